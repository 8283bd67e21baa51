"""Moved to :mod:`lifecycle_trace.testing.chrome_check`; this import path keeps working."""

from lifecycle_trace.testing.chrome_check import InvalidTraceError
from lifecycle_trace.testing.chrome_check import TraceProblem
from lifecycle_trace.testing.chrome_check import trace_problems
from lifecycle_trace.testing.chrome_check import validate_chrome_trace

__all__ = [
    "InvalidTraceError",
    "TraceProblem",
    "trace_problems",
    "validate_chrome_trace",
]
