"""Moved to :mod:`lifecycle_trace.log.store`; this name keeps old imports working."""

from lifecycle_trace.log.store import (
    CorruptLogError,
    JsonlWriter,
    LoadedLog,
    SkippedLineWarning,
    TruncatedLogWarning,
    UnsupportedEventError,
    iter_jsonl,
    read_jsonl,
    replay,
    write_jsonl,
)

__all__ = [
    "CorruptLogError",
    "JsonlWriter",
    "LoadedLog",
    "SkippedLineWarning",
    "TruncatedLogWarning",
    "UnsupportedEventError",
    "iter_jsonl",
    "read_jsonl",
    "replay",
    "write_jsonl",
]
