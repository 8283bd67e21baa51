"""Each finished request's timeline and status intervals, in one pass holding only live requests.

Exporters that describe a request once it is over (an OpenTelemetry span per
request) need both views of it: the step-based
:class:`~lifecycle_trace.fold.timeline.Timeline` and the time-based
:class:`~lifecycle_trace.fold.intervals.RequestIntervals`.
:func:`finished_requests` hands out each pair at the end of the step in which
the request finished, then forgets it.
"""

from __future__ import annotations

from collections.abc import Iterator

from lifecycle_trace.fold.intervals import RequestIntervals
from lifecycle_trace.fold.intervals import intervals_of
from lifecycle_trace.fold.requests import LogFold
from lifecycle_trace.fold.requests import RequestState
from lifecycle_trace.fold.requests import Source
from lifecycle_trace.fold.requests import engine_runs
from lifecycle_trace.fold.timeline import Timeline
from lifecycle_trace.fold.timeline import timeline_of

__all__ = ["finished_requests"]


def finished_requests(source: Source) -> Iterator[tuple[Timeline, RequestIntervals]]:
    """Every finished request's timeline and intervals, soon after it finishes, in finishing order.

    ``source`` is one engine's events or the records of several. Requests
    still live when the log ends are not handed out. Raises ``ValueError``
    where :class:`~lifecycle_trace.fold.requests.RequestFold` does.
    """
    retired: list[RequestState] = []
    folds = LogFold(on_retire=retired.append, keep_finished=False)
    for engine, events in engine_runs(source)[1]:
        feed = folds.fold(engine).feed
        for event in events:
            feed(event)
            if retired:
                yield from _pairs(retired)
    folds.retire()
    yield from _pairs(retired)


def _pairs(retired: list[RequestState]) -> list[tuple[Timeline, RequestIntervals]]:
    out = [(timeline_of(t, t.step), intervals_of(t)) for t in retired]
    retired.clear()
    return out
