"""Moved to :mod:`lifecycle_trace.fold.timeline`; this import path keeps working."""

from lifecycle_trace.fold.timeline import Sample
from lifecycle_trace.fold.timeline import Segment
from lifecycle_trace.fold.timeline import Timeline
from lifecycle_trace.fold.timeline import TimelineBuilder
from lifecycle_trace.fold.timeline import build_timelines
from lifecycle_trace.fold.timeline import iter_timelines

__all__ = [
    "Sample",
    "Segment",
    "Timeline",
    "TimelineBuilder",
    "build_timelines",
    "iter_timelines",
]
