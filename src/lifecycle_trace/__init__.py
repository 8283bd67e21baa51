"""lifecycle_trace: record, rebuild, check and export the lifecycle of minivllm requests.

One idea: the engine's typed events are the record, and everything else is a
fold over it. :mod:`lifecycle_trace.log` holds the log: an :class:`EventLog`
keeps it in memory (gap-checked), :class:`JsonlWriter` streams it to JSON
Lines as the engine runs, :func:`iter_jsonl` reads it back a chunk at a time.
:func:`build_timelines` folds it into one :class:`Timeline` per request,
:mod:`lifecycle_trace.logging` logs them with structlog, and
:mod:`lifecycle_trace.lab` answers lab 01's questions. The invariant checker
lives in :mod:`lifecycle_trace.checker`; :func:`iter_timelines` folds a log of
any length in memory that follows its live requests; :func:`slice_log` and
:func:`merge_logs` cut logs down and combine several engines' logs.
"""

from typing import Any

from lifecycle_trace.lab import trace_from_events, trace_request
from lifecycle_trace.log import (
    CorruptLogError,
    EventLog,
    JsonlWriter,
    LoadedLog,
    LogReader,
    Recorder,
    SequenceError,
    SkippedLineWarning,
    TruncatedLogWarning,
    UnsupportedEventError,
    iter_jsonl,
    read_jsonl,
    record,
    replay,
    write_jsonl,
)
from lifecycle_trace.logging import JsonLogObserver, make_json_logger
from lifecycle_trace.merging import merge_logs
from lifecycle_trace.slicing import slice_log
from lifecycle_trace.streaming import iter_timelines
from lifecycle_trace.timeline import Sample, Segment, Timeline, TimelineBuilder, build_timelines

__all__ = [
    "INVARIANTS",
    "LEGAL_TRANSITIONS",
    "CorruptLogError",
    "EventLog",
    "InvariantChecker",
    "JsonLogObserver",
    "JsonlWriter",
    "LoadedLog",
    "LogReader",
    "Recorder",
    "Sample",
    "Segment",
    "SequenceError",
    "SkippedLineWarning",
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
    "read_jsonl",
    "record",
    "replay",
    "slice_log",
    "trace_from_events",
    "trace_request",
    "write_jsonl",
]

_FROM_CHECKER = (
    "INVARIANTS",
    "LEGAL_TRANSITIONS",
    "InvariantChecker",
    "Violation",
    "check",
    "format_violations",
)


def __getattr__(name: str) -> Any:
    # The checker is imported on first use, so importing the package stays cheap.
    if name in _FROM_CHECKER:
        from lifecycle_trace import checker

        return getattr(checker, name)
    raise AttributeError(f"module 'lifecycle_trace' has no attribute {name!r}")
