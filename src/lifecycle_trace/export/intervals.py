"""Status intervals on the event clock: when each request entered and left each status.

:class:`~lifecycle_trace.timeline.Timeline` tells a request's life in engine
steps; exporters for time-based tools (trace viewers, spans) need it in
nanoseconds. :func:`status_intervals` folds a log into, per request, the
half-open intervals ``[start_ns, end_ns)`` it spent WAITING, RUNNING or
PREEMPTED, and the moment it finished. Intervals of one request never overlap
and each starts where the previous one ended.

Cost: one pass over the log, one small object per status change.
"""

from __future__ import annotations

from collections.abc import Iterable

import attrs

from minivllm.events import CounterUpdated, Event, RequestAdded, StatusChanged
from minivllm.request import RequestStatus

__all__ = ["Finish", "RequestIntervals", "StatusInterval", "status_intervals"]


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


def status_intervals(events: Iterable[Event]) -> dict[str, RequestIntervals]:
    """Fold a log into each request's status intervals, by request id in order of arrival.

    Raises ``ValueError`` for a status change of a request the log never
    added, or a clock that runs backwards within one request's life.
    """
    open_: dict[str, _Open] = {}
    last_ts = 0
    last_step = 0
    for e in events:
        last_ts, last_step = e.ts_ns, e.step
        if isinstance(e, RequestAdded):
            if e.request_id in open_:
                raise ValueError(f"seq {e.seq}: request {e.request_id!r} is added a second time")
            open_[e.request_id] = _Open(e)
        elif isinstance(e, StatusChanged):
            r = open_.get(e.request_id)
            if r is None:
                raise ValueError(
                    f"seq {e.seq}: status change of request {e.request_id!r}, "
                    f"which the log never added"
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
        elif (
            isinstance(e, CounterUpdated)
            and e.counter == "num_tokens"
            and e.new > e.old
            and e.request_id in open_
        ):
            r = open_[e.request_id]
            if r.first_token_ns is None:
                r.first_token_ns, r.first_token_step = e.ts_ns, e.step
    for r in open_.values():
        if r.finish is None:
            r.close(max(last_ts, r.start_ns), max(last_step, r.start_step), open_end=True)
    return {rid: r.freeze() for rid, r in open_.items()}
