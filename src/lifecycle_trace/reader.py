"""Moved to :mod:`lifecycle_trace.log.reader`; this name keeps old imports working."""

from lifecycle_trace.log.reader import (
    ENGINE_KEY,
    CorruptLogError,
    LogReader,
    SkippedLineWarning,
    TruncatedLogWarning,
    UnsupportedEventError,
    classify,
    iter_jsonl,
)

__all__ = [
    "ENGINE_KEY",
    "CorruptLogError",
    "LogReader",
    "SkippedLineWarning",
    "TruncatedLogWarning",
    "UnsupportedEventError",
    "classify",
    "iter_jsonl",
]
