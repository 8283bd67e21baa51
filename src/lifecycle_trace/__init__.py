"""lifecycle_trace: record, rebuild, check and export the lifecycle of minivllm requests.

One idea: the log is the truth, and everything else is a fold over it.

The engine's typed events are the record. :mod:`lifecycle_trace.log` holds
the log: an :class:`EventLog` keeps it in memory (gap-checked, finished steps
packed), :class:`JsonlWriter` streams it to JSON Lines as the engine runs,
:func:`iter_jsonl` reads it back a chunk at a time, :func:`slice_log` and
:func:`merge_logs` cut logs down and combine several engines' logs.
:mod:`lifecycle_trace.fold` rebuilds each request's life from them
(:class:`RequestFold`), and every view reads that fold: timelines
(:func:`build_timelines`, :func:`iter_timelines` for a log of any length),
status intervals, stats, lab 01's event-derived trace
(:mod:`lifecycle_trace.lab`), slices and the exporters
(:mod:`lifecycle_trace.export`). The invariant checker lives in
:mod:`lifecycle_trace.check`; :mod:`lifecycle_trace.logging` logs events
with structlog.
"""

# ``check`` is the checker's subpackage, which calling runs its function ``check``.
from lifecycle_trace import check
from lifecycle_trace import log
from lifecycle_trace.check import INVARIANTS
from lifecycle_trace.check import LEGAL_TRANSITIONS
from lifecycle_trace.check import RULES
from lifecycle_trace.check import InvariantChecker
from lifecycle_trace.check import Violation
from lifecycle_trace.check import format_violations
from lifecycle_trace.fold.requests import LogFold
from lifecycle_trace.fold.requests import RequestFold
from lifecycle_trace.fold.requests import RequestKey
from lifecycle_trace.fold.requests import RequestState
from lifecycle_trace.fold.timeline import Sample
from lifecycle_trace.fold.timeline import Segment
from lifecycle_trace.fold.timeline import Timeline
from lifecycle_trace.fold.timeline import TimelineBuilder
from lifecycle_trace.fold.timeline import build_timelines
from lifecycle_trace.fold.timeline import iter_timelines
from lifecycle_trace.lab import trace_from_events
from lifecycle_trace.lab import trace_request
from lifecycle_trace.log import *  # noqa: F403  (the event log's whole API)
from lifecycle_trace.logging import JsonLogObserver
from lifecycle_trace.logging import make_json_logger

__all__ = [
    "INVARIANTS",
    "LEGAL_TRANSITIONS",
    "RULES",
    "InvariantChecker",
    "JsonLogObserver",
    "LogFold",
    "RequestFold",
    "RequestKey",
    "RequestState",
    "Sample",
    "Segment",
    "Timeline",
    "TimelineBuilder",
    "Violation",
    "build_timelines",
    "check",
    "format_violations",
    "iter_timelines",
    "make_json_logger",
    "trace_from_events",
    "trace_request",
]
__all__ += log.__all__
