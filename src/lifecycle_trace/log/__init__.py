"""The event log as files: cut one down to some requests or steps, merge several engines' logs.

:func:`slice_log` writes the part of a log that holds some requests (for
their whole lives) or steps, as a log the other commands accept;
:func:`merge_logs` combines the logs of several engines into one ordered by
time, each line naming its engine.
"""

from lifecycle_trace.log.merge import DuplicateEngineError, merge_logs
from lifecycle_trace.log.slice import (
    SOURCE_SEQ_KEY,
    StepRange,
    parse_step_range,
    slice_log,
    slice_records,
)

__all__ = [
    "SOURCE_SEQ_KEY",
    "DuplicateEngineError",
    "StepRange",
    "merge_logs",
    "parse_step_range",
    "slice_log",
    "slice_records",
]
