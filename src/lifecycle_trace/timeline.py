"""Moved to :mod:`lifecycle_trace.fold.timeline`; this import path keeps working."""

from lifecycle_trace.fold.timeline import (
    Sample,
    Segment,
    Timeline,
    TimelineBuilder,
    build_timelines,
    iter_timelines,
)

__all__ = [
    "Sample",
    "Segment",
    "Timeline",
    "TimelineBuilder",
    "build_timelines",
    "iter_timelines",
]
