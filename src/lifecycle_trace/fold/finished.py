"""Each finished request's timeline and status intervals, in one pass holding only live requests.

Exporters that describe a request once it is over (an OpenTelemetry span per
request) need both views of it: the step-based
:class:`~lifecycle_trace.timeline.Timeline` and the time-based
:class:`~lifecycle_trace.export.intervals.RequestIntervals`.
:func:`finished_requests` folds the two side by side and hands out each pair
at the end of the step in which the request finished, then forgets it.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from lifecycle_trace.export.intervals import IntervalFold, RequestIntervals
from lifecycle_trace.timeline import Timeline, TimelineBuilder
from minivllm.events import Event

__all__ = ["finished_requests"]


def finished_requests(events: Iterable[Event]) -> Iterator[tuple[Timeline, RequestIntervals]]:
    """Every finished request's timeline and intervals, soon after it finishes, in finishing order.

    Requests still live when the log ends are not handed out. Raises
    ``ValueError`` where :class:`~lifecycle_trace.timeline.TimelineBuilder` or
    :class:`~lifecycle_trace.export.intervals.IntervalFold` does.
    """
    # The intervals are complete at the finishing status change, the timeline only
    # at the end of that step: intervals wait here for their timeline.
    waiting: dict[str, RequestIntervals] = {}
    ready: list[tuple[Timeline, RequestIntervals]] = []

    def on_retire(t: Timeline) -> None:
        ready.append((t, waiting.pop(t.request_id)))

    builder = TimelineBuilder(on_retire=on_retire)
    fold = IntervalFold(on_finish=lambda r: waiting.__setitem__(r.request_id, r))
    for e in events:
        fold.feed(e)
        builder.feed(e)
        if ready:
            yield from ready
            ready.clear()
    builder.retire()
    yield from ready
