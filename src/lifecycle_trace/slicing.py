"""Moved to :mod:`lifecycle_trace.log.slice`; this import path keeps working."""

from lifecycle_trace.log.slice import (
    SOURCE_SEQ_KEY,
    StepRange,
    parse_step_range,
    slice_log,
    slice_records,
)

__all__ = [
    "SOURCE_SEQ_KEY",
    "StepRange",
    "parse_step_range",
    "slice_log",
    "slice_records",
]
