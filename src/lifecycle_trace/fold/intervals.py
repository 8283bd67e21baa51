"""Status intervals on the event clock: when each request entered and left each status.

:class:`~lifecycle_trace.timeline.Timeline` tells a request's life in engine
steps; exporters for time-based tools (trace viewers, spans) need it in
nanoseconds. :func:`status_intervals` folds a log into, per request, the
half-open intervals ``[start_ns, end_ns)`` it spent WAITING, RUNNING or
PREEMPTED, and the moment it finished. Intervals of one request never overlap
and each starts where the previous one ended. :class:`IntervalFold` is the
same fold one event at a time, handing each request out as it finishes, for
logs too long to hold.

Cost: one pass over the log, one small object per status change.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import attrs

from minivllm.events import CounterUpdated, Event, RequestAdded, StatusChanged
from minivllm.request import RequestStatus

__all__ = [
    "Finish",
    "IntervalFold",
    "RequestIntervals",
    "StatusInterval",
    "status_intervals",
]


@attrs.frozen
class StatusInterval:
    """One stretch of time a request spent in one unfinished status.

    ``open_end`` is true when the log ended while the request was still in it,
    so ``end_ns`` is only the time of the log's last event.
    """

    status: RequestStatus
    start_ns: int
    end_ns: int
    first_step: int
    last_step: int
    open_end: bool = False

    @property
    def duration_ns(self) -> int:
        """Length of the interval in nanoseconds."""
        return self.end_ns - self.start_ns


@attrs.frozen
class Finish:
    """How and when a request finished."""

    status: RequestStatus
    reason: str
    ts_ns: int
    step: int
    stop_reason: int | str | None
    num_output_tokens: int


@attrs.frozen
class RequestIntervals:
    """Everything time-based one request's events say, in event-clock nanoseconds."""

    request_id: str
    arrival_ns: int
    arrival_seq: int
    num_prompt_tokens: int
    intervals: tuple[StatusInterval, ...]
    first_token_ns: int | None
    first_token_step: int | None
    finish: Finish | None

    @property
    def end_ns(self) -> int:
        """When the request's last interval ended (its finish, or the log's end)."""
        return self.intervals[-1].end_ns if self.intervals else self.arrival_ns


class _Open:
    """The fold's mutable state for one request."""

    __slots__ = (
        "added",
        "closed",
        "finish",
        "first_token_ns",
        "first_token_step",
        "start_ns",
        "start_step",
        "status",
    )

    def __init__(self, e: RequestAdded) -> None:
        self.added = e
        self.status = RequestStatus.WAITING
        self.start_ns = e.ts_ns
        self.start_step = e.step
        self.closed: list[StatusInterval] = []
        self.first_token_ns: int | None = None
        self.first_token_step: int | None = None
        self.finish: Finish | None = None

    def close(self, ts_ns: int, step: int, open_end: bool = False) -> None:
        self.closed.append(
            StatusInterval(self.status, self.start_ns, ts_ns, self.start_step, step, open_end)
        )

    def freeze(self) -> RequestIntervals:
        a = self.added
        return RequestIntervals(
            a.request_id,
            a.ts_ns,
            a.seq,
            a.num_prompt_tokens,
            tuple(self.closed),
            self.first_token_ns,
            self.first_token_step,
            self.finish,
        )


class IntervalFold:
    """Status intervals folded one event at a time, each request handed out when it finishes.

    ``on_finish`` receives a request's :class:`RequestIntervals` at its
    finishing status change, and the fold forgets it, so memory follows the
    number of live requests; :meth:`close` ends the log and returns the
    requests still live, their last interval left open. A finished request id
    may be added again. Raises ``ValueError`` for a status change of a request
    that is not live, a live request added again, or a clock that runs
    backwards within one request's life.
    """

    __slots__ = ("_last_step", "_last_ts", "_live", "_on_finish")

    def __init__(self, on_finish: Callable[[RequestIntervals], None]) -> None:
        self._on_finish = on_finish
        self._live: dict[str, _Open] = {}
        self._last_ts = 0
        self._last_step = 0

    @property
    def num_live(self) -> int:
        """Requests added and not finished yet."""
        return len(self._live)

    def feed(self, e: Event) -> None:
        """Fold one event in."""
        self._last_ts, self._last_step = e.ts_ns, e.step
        if isinstance(e, RequestAdded):
            if e.request_id in self._live:
                raise ValueError(f"seq {e.seq}: request {e.request_id!r} is added a second time")
            self._live[e.request_id] = _Open(e)
        elif isinstance(e, StatusChanged):
            self._on_status(e)
        elif isinstance(e, CounterUpdated) and e.counter == "num_tokens" and e.new > e.old:
            r = self._live.get(e.request_id)
            if r is not None and r.first_token_ns is None:
                r.first_token_ns, r.first_token_step = e.ts_ns, e.step

    def _on_status(self, e: StatusChanged) -> None:
        r = self._live.get(e.request_id)
        if r is None:
            raise ValueError(
                f"seq {e.seq}: status change of request {e.request_id!r}, "
                f"which the log never added (or which had finished)"
            )
        if e.ts_ns < r.start_ns:
            raise ValueError(
                f"seq {e.seq}: request {e.request_id!r} changes status at {e.ts_ns} ns, "
                f"before it entered {r.status.name} at {r.start_ns} ns (clock went back)"
            )
        r.close(e.ts_ns, e.step)
        r.status, r.start_ns, r.start_step = e.new_status, e.ts_ns, e.step
        if RequestStatus.is_finished(e.new_status):
            r.finish = Finish(
                e.new_status,
                RequestStatus.get_finished_reason(e.new_status) or e.new_status.name,
                e.ts_ns,
                e.step,
                e.stop_reason,
                e.num_output_tokens,
            )
            del self._live[e.request_id]
            self._on_finish(r.freeze())

    def close(self) -> list[RequestIntervals]:
        """End the log: the requests still live, in order of arrival, their last interval open."""
        out = []
        for r in self._live.values():
            r.close(max(self._last_ts, r.start_ns), max(self._last_step, r.start_step), True)
            out.append(r.freeze())
        self._live.clear()
        return out


def status_intervals(events: Iterable[Event]) -> dict[str, RequestIntervals]:
    """Fold a log into each request's status intervals, by request id in order of arrival.

    Raises ``ValueError`` as :class:`IntervalFold` does, and for a request id
    added twice (the result is keyed by request id).
    """
    done: dict[str, RequestIntervals] = {}
    fold = IntervalFold(on_finish=lambda r: done.__setitem__(r.request_id, r))
    for e in events:
        if isinstance(e, RequestAdded) and e.request_id in done:
            raise ValueError(f"seq {e.seq}: request {e.request_id!r} is added a second time")
        fold.feed(e)
    everything = [*done.values(), *fold.close()]
    everything.sort(key=lambda r: r.arrival_seq)
    return {r.request_id: r for r in everything}
