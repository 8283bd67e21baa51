"""Status intervals on the event clock: when each request entered and left each status.

:class:`~lifecycle_trace.fold.timeline.Timeline` tells a request's life in
engine steps; exporters for time-based tools (trace viewers, spans) need it
in nanoseconds. :func:`intervals_of` reads, from a request's state in the
fold, the half-open intervals ``[start_ns, end_ns)`` it spent WAITING,
RUNNING or PREEMPTED, and the moment it finished. Intervals of one request
never overlap and each starts where the previous one ended.
:func:`status_intervals` does so for a whole log in memory;
:class:`IntervalFold` one event at a time, handing each request out as it
finishes, for logs too long to hold.
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Iterable

import attrs

from lifecycle_trace.fold.requests import RequestFold
from lifecycle_trace.fold.requests import RequestKey
from lifecycle_trace.fold.requests import RequestState
from lifecycle_trace.fold.timeline import life_labels
from minivllm.events import Event
from minivllm.request import RequestStatus

__all__ = [
    "Finish",
    "IntervalFold",
    "RequestIntervals",
    "StatusInterval",
    "intervals_of",
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
    engine_id: str = ""

    @property
    def key(self) -> RequestKey:
        """``(engine_id, request_id, life)``: which life of which request this is."""
        return RequestKey(self.engine_id, self.request_id, self.arrival_seq)

    @property
    def end_ns(self) -> int:
        """When the request's last interval ended (its finish, or the log's end)."""
        return self.intervals[-1].end_ns if self.intervals else self.arrival_ns


def intervals_of(t: RequestState, end_ns: int = 0, end_step: int = 0) -> RequestIntervals:
    """A request's intervals; an unfinished one's last interval ends open at the log's end.

    ``end_ns`` and ``end_step`` are the log's last event time and step.
    Raises ``ValueError`` if the request's clock ran backwards.
    """
    steps, statuses, times = t.status_steps, t.statuses, t.status_ns
    closed: list[StatusInterval] = []
    for i in range(len(steps) - 1):
        start, end = times[i], times[i + 1]
        if end < start:
            raise ValueError(
                f"request {t.request_id!r} changes status at {end} ns (step {steps[i + 1]}), "
                f"before it entered {statuses[i].name} at {start} ns (clock went back)"
            )
        closed.append(StatusInterval(statuses[i], start, end, steps[i], steps[i + 1]))
    finish = None
    if t.finish_status is not None:
        status = t.finish_status
        finish = Finish(
            status,
            RequestStatus.get_finished_reason(status) or status.name,
            times[-1],
            steps[-1],
            t.stop_reason,
            t.num_output_tokens,
        )
    else:
        step, start = steps[-1], times[-1]
        closed.append(
            StatusInterval(statuses[-1], start, max(end_ns, start), step, max(end_step, step), True)
        )
    return RequestIntervals(
        t.request_id,
        t.arrival_ns,
        t.life,
        t.num_prompt_tokens,
        tuple(closed),
        t.first_token_ns,
        t.first_token_step,
        finish,
        t.engine_id,
    )


class IntervalFold:
    """Status intervals folded one event at a time, each request handed out when it finishes.

    ``on_finish`` receives a request's :class:`RequestIntervals` at its
    finishing status change, and the fold forgets it at the end of that step,
    so memory follows the number of live requests; :meth:`close` ends the log
    and returns the requests still live, their last interval left open. A
    finished request id may be added again. Raises ``ValueError`` as
    :class:`~lifecycle_trace.fold.requests.RequestFold` does, and for a clock
    that runs backwards within one request's life.
    """

    __slots__ = ("fold",)

    def __init__(self, on_finish: Callable[[RequestIntervals], None]) -> None:
        self.fold = RequestFold(
            on_finish=lambda t: on_finish(intervals_of(t)), keep_finished=False, history=False
        )

    @property
    def num_live(self) -> int:
        """Requests added and not finished yet."""
        return sum(1 for t in self.fold.live.values() if t.finish_status is None)

    def feed(self, e: Event) -> None:
        """Fold one event in."""
        self.fold.feed(e)

    def close(self) -> list[RequestIntervals]:
        """End the log: the requests still live, in order of arrival, their last interval open."""
        return open_intervals(self.fold)


def open_intervals(fold: RequestFold) -> list[RequestIntervals]:
    """The intervals of the requests of ``fold`` that have not finished, in order of arrival."""
    end_ns, end_step = fold.last_ts_ns, fold.last_step
    return [intervals_of(t, end_ns, end_step) for t in fold.states() if t.finish_status is None]


def status_intervals(events: Iterable[Event]) -> dict[str, RequestIntervals]:
    """Fold a log into each life's status intervals, by request id in order of arrival.

    Raises ``ValueError`` as :class:`IntervalFold` does. A reused request id's
    later lives are keyed ``ID#2``, ``ID#3``... (see ``life_labels``).
    """
    fold = RequestFold(history=False)
    fold.feed_all(events)
    lives = [intervals_of(t, fold.last_ts_ns, fold.last_step) for t in fold.states()]
    return dict(zip(life_labels(lives), lives, strict=True))
