"""The former home of the checker; it lives in :mod:`lifecycle_trace.check` now."""

from lifecycle_trace.check import (
    ASYNC_TRANSITIONS,
    FINISHED_KEPT,
    INVARIANTS,
    LEGAL_TRANSITIONS,
    RULES,
    InvariantChecker,
    Violation,
    check,
    format_violations,
)

__all__ = [
    "ASYNC_TRANSITIONS",
    "FINISHED_KEPT",
    "INVARIANTS",
    "LEGAL_TRANSITIONS",
    "RULES",
    "InvariantChecker",
    "Violation",
    "check",
    "format_violations",
]
