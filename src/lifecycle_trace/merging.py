"""Moved to :mod:`lifecycle_trace.log.merge`; this import path keeps working."""

from lifecycle_trace.log.merge import DuplicateEngineError
from lifecycle_trace.log.merge import merge_logs

__all__ = [
    "DuplicateEngineError",
    "merge_logs",
]
