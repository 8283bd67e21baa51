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

# Imported eagerly: the function ``check`` must be what ``lifecycle_trace.check``
# names here, not the subpackage of the same name (import its other names from
# the subpackage with ``from lifecycle_trace.check import ...``).
from lifecycle_trace.check import (
    INVARIANTS,
    LEGAL_TRANSITIONS,
    RULES,
    InvariantChecker,
    Violation,
    check,
    format_violations,
)
from lifecycle_trace.fold.requests import LogFold, RequestFold, RequestKey, RequestState
from lifecycle_trace.fold.timeline import (
    Sample,
    Segment,
    Timeline,
    TimelineBuilder,
    build_timelines,
    iter_timelines,
)
from lifecycle_trace.lab import trace_from_events, trace_request
from lifecycle_trace.log import (
    CorruptLogError,
    DuplicateEngineError,
    EventLog,
    JsonlWriter,
    LoadedLog,
    LogReader,
    Recorder,
    SequenceError,
    SkippedLineWarning,
    StepRange,
    TruncatedLogWarning,
    UnsupportedEventError,
    iter_jsonl,
    merge_logs,
    parse_step_range,
    read_jsonl,
    record,
    replay,
    slice_log,
    slice_records,
    write_jsonl,
)
from lifecycle_trace.logging import JsonLogObserver, make_json_logger

__all__ = [
    "INVARIANTS",
    "LEGAL_TRANSITIONS",
    "RULES",
    "CorruptLogError",
    "DuplicateEngineError",
    "EventLog",
    "InvariantChecker",
    "JsonLogObserver",
    "JsonlWriter",
    "LoadedLog",
    "LogFold",
    "LogReader",
    "Recorder",
    "RequestFold",
    "RequestKey",
    "RequestState",
    "Sample",
    "Segment",
    "SequenceError",
    "SkippedLineWarning",
    "StepRange",
    "Timeline",
    "TimelineBuilder",
    "TruncatedLogWarning",
    "UnsupportedEventError",
    "Violation",
    "build_timelines",
    "check",
    "format_violations",
    "iter_jsonl",
    "iter_timelines",
    "make_json_logger",
    "merge_logs",
    "parse_step_range",
    "read_jsonl",
    "record",
    "replay",
    "slice_log",
    "slice_records",
    "trace_from_events",
    "trace_request",
    "write_jsonl",
]
