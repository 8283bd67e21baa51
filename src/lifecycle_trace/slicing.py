"""Moved to :mod:`lifecycle_trace.log.slice`; this import path keeps working."""

from lifecycle_trace.log.slice import SOURCE_SEQ_KEY
from lifecycle_trace.log.slice import StepRange
from lifecycle_trace.log.slice import parse_step_range
from lifecycle_trace.log.slice import slice_log
from lifecycle_trace.log.slice import slice_records

__all__ = [
    "SOURCE_SEQ_KEY",
    "StepRange",
    "parse_step_range",
    "slice_log",
    "slice_records",
]
