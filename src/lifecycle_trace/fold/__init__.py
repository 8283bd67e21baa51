"""Everything derived from the log: one fold of each request's life, and its views.

:mod:`~lifecycle_trace.fold.requests` is the fold itself: a
:class:`RequestState` per life of each request, keyed by
``(engine_id, request_id, life)``, kept by a :class:`RequestFold` per engine
(:class:`LogFold` for the records of several). The rest are views of those
states: :mod:`~lifecycle_trace.fold.timeline` (per-step :class:`Timeline`
values), :mod:`~lifecycle_trace.fold.intervals` and
:mod:`~lifecycle_trace.fold.phases` (the same life on the event clock, cut
into vLLM's phases), :mod:`~lifecycle_trace.fold.finished` (both views of
each request as it finishes) and :mod:`~lifecycle_trace.fold.stats` (latency
summaries).
"""

from lifecycle_trace.fold.finished import finished_requests
from lifecycle_trace.fold.intervals import (
    Finish,
    IntervalFold,
    RequestIntervals,
    StatusInterval,
    intervals_of,
    status_intervals,
)
from lifecycle_trace.fold.phases import PHASE_NAMES, Phase, request_phases
from lifecycle_trace.fold.requests import (
    LogFold,
    Record,
    RequestFold,
    RequestKey,
    RequestState,
    Source,
    engine_runs,
    peek_records,
)
from lifecycle_trace.fold.stats import METRICS, StatsAccumulator, Summary, summarize_timelines
from lifecycle_trace.fold.timeline import (
    Sample,
    Segment,
    Timeline,
    TimelineBuilder,
    build_timelines,
    iter_timelines,
    timeline_of,
)

__all__ = [
    "METRICS",
    "PHASE_NAMES",
    "Finish",
    "IntervalFold",
    "LogFold",
    "Phase",
    "Record",
    "RequestFold",
    "RequestIntervals",
    "RequestKey",
    "RequestState",
    "Sample",
    "Segment",
    "Source",
    "StatsAccumulator",
    "StatusInterval",
    "Summary",
    "Timeline",
    "TimelineBuilder",
    "build_timelines",
    "engine_runs",
    "finished_requests",
    "intervals_of",
    "iter_timelines",
    "peek_records",
    "request_phases",
    "status_intervals",
    "summarize_timelines",
    "timeline_of",
]
