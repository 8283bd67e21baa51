"""The event log, the one record everything else is folded from, and its JSON Lines form.

- :class:`EventLog` holds events in memory (gap-checked); :class:`Recorder` /
  :func:`record` subscribe one to an engine.
- :class:`JsonlWriter` streams events to a JSON Lines file as the engine runs;
  :func:`write_jsonl` writes a list of them.
- :func:`slice_log` writes the part of a log that holds some requests or steps;
  :func:`merge_logs` combines several engines' logs into one ordered by time.
- :func:`iter_jsonl` / :class:`LogReader` read a log a chunk at a time, merged
  or not; :func:`read_jsonl` reads it whole; :func:`replay` folds it into
  timelines as it reads.

Every line is one event in the form of ``minivllm.events.event_to_dict``,
written and read by one msgspec codec.
"""

from lifecycle_trace.log.eventlog import EventLog, Recorder, SequenceError, record
from lifecycle_trace.log.merge import DuplicateEngineError, merge_logs
from lifecycle_trace.log.reader import (
    ENGINE_KEY,
    CorruptLogError,
    LogReader,
    SkippedLineWarning,
    TruncatedLogWarning,
    UnsupportedEventError,
    iter_jsonl,
)
from lifecycle_trace.log.sink import JsonlWriter
from lifecycle_trace.log.slice import (
    SOURCE_SEQ_KEY,
    StepRange,
    parse_step_range,
    slice_log,
    slice_records,
)
from lifecycle_trace.log.store import LoadedLog, read_jsonl, replay, write_jsonl

__all__ = [
    "ENGINE_KEY",
    "SOURCE_SEQ_KEY",
    "CorruptLogError",
    "DuplicateEngineError",
    "EventLog",
    "JsonlWriter",
    "LoadedLog",
    "LogReader",
    "Recorder",
    "SequenceError",
    "SkippedLineWarning",
    "StepRange",
    "TruncatedLogWarning",
    "UnsupportedEventError",
    "iter_jsonl",
    "merge_logs",
    "parse_step_range",
    "read_jsonl",
    "record",
    "replay",
    "slice_log",
    "slice_records",
    "write_jsonl",
]
