"""Moved to :mod:`lifecycle_trace.fold.stats`; this import path keeps working."""

from lifecycle_trace.fold.stats import (
    METRICS,
    StatsAccumulator,
    Summary,
    summarize,
    summarize_timelines,
)

__all__ = [
    "METRICS",
    "StatsAccumulator",
    "Summary",
    "summarize",
    "summarize_timelines",
]
