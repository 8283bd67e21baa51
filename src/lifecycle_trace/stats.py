"""Moved to :mod:`lifecycle_trace.fold.stats`; this import path keeps working."""

from lifecycle_trace.fold.stats import METRICS
from lifecycle_trace.fold.stats import StatsAccumulator
from lifecycle_trace.fold.stats import Summary
from lifecycle_trace.fold.stats import summarize
from lifecycle_trace.fold.stats import summarize_timelines

__all__ = [
    "METRICS",
    "StatsAccumulator",
    "Summary",
    "summarize",
    "summarize_timelines",
]
