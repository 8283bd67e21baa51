"""The former home of the checker; it lives in :mod:`lifecycle_trace.check` now."""

from lifecycle_trace.check import ASYNC_TRANSITIONS
from lifecycle_trace.check import FINISHED_KEPT
from lifecycle_trace.check import INVARIANTS
from lifecycle_trace.check import LEGAL_TRANSITIONS
from lifecycle_trace.check import RULES
from lifecycle_trace.check import InvariantChecker
from lifecycle_trace.check import Violation
from lifecycle_trace.check import check
from lifecycle_trace.check import format_violations

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
