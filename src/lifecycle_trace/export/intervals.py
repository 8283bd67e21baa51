"""Moved to :mod:`lifecycle_trace.fold.intervals`; this import path keeps working."""

from lifecycle_trace.fold.intervals import (
    Finish,
    IntervalFold,
    RequestIntervals,
    StatusInterval,
    status_intervals,
)

__all__ = [
    "Finish",
    "IntervalFold",
    "RequestIntervals",
    "StatusInterval",
    "status_intervals",
]
