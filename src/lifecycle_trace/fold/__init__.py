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
summaries). :mod:`~lifecycle_trace.fold.audit` is the fold the checker reads:
:class:`AuditFold`, whose :class:`AuditState` s also name the events that set
their values.
"""

from lifecycle_trace.fold.audit import FINISHED_KEPT
from lifecycle_trace.fold.audit import AuditFold
from lifecycle_trace.fold.audit import AuditState
from lifecycle_trace.fold.finished import finished_requests
from lifecycle_trace.fold.intervals import Finish
from lifecycle_trace.fold.intervals import IntervalFold
from lifecycle_trace.fold.intervals import RequestIntervals
from lifecycle_trace.fold.intervals import StatusInterval
from lifecycle_trace.fold.intervals import intervals_of
from lifecycle_trace.fold.intervals import status_intervals
from lifecycle_trace.fold.phases import PHASE_NAMES
from lifecycle_trace.fold.phases import Phase
from lifecycle_trace.fold.phases import request_phases
from lifecycle_trace.fold.requests import LogFold
from lifecycle_trace.fold.requests import Record
from lifecycle_trace.fold.requests import RequestFold
from lifecycle_trace.fold.requests import RequestKey
from lifecycle_trace.fold.requests import RequestState
from lifecycle_trace.fold.requests import Source
from lifecycle_trace.fold.requests import engine_runs
from lifecycle_trace.fold.requests import peek_records
from lifecycle_trace.fold.stats import METRICS
from lifecycle_trace.fold.stats import StatsAccumulator
from lifecycle_trace.fold.stats import Summary
from lifecycle_trace.fold.stats import summarize_timelines
from lifecycle_trace.fold.timeline import Sample
from lifecycle_trace.fold.timeline import Segment
from lifecycle_trace.fold.timeline import Timeline
from lifecycle_trace.fold.timeline import TimelineBuilder
from lifecycle_trace.fold.timeline import build_timelines
from lifecycle_trace.fold.timeline import iter_timelines
from lifecycle_trace.fold.timeline import timeline_of

__all__ = [
    "FINISHED_KEPT",
    "METRICS",
    "PHASE_NAMES",
    "AuditFold",
    "AuditState",
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
