"""Moved to :mod:`lifecycle_trace.fold.phases`; this import path keeps working."""

from lifecycle_trace.fold.phases import PHASE_NAMES
from lifecycle_trace.fold.phases import Phase
from lifecycle_trace.fold.phases import request_phases

__all__ = [
    "PHASE_NAMES",
    "Phase",
    "request_phases",
]
