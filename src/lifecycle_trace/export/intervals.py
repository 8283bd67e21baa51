"""Moved to :mod:`lifecycle_trace.fold.intervals`; this import path keeps working."""

from lifecycle_trace.fold.intervals import Finish
from lifecycle_trace.fold.intervals import IntervalFold
from lifecycle_trace.fold.intervals import RequestIntervals
from lifecycle_trace.fold.intervals import StatusInterval
from lifecycle_trace.fold.intervals import status_intervals

__all__ = [
    "Finish",
    "IntervalFold",
    "RequestIntervals",
    "StatusInterval",
    "status_intervals",
]
