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

from lifecycle_trace.log.eventlog import EventLog
from lifecycle_trace.log.eventlog import Recorder
from lifecycle_trace.log.eventlog import SequenceError
from lifecycle_trace.log.eventlog import record
from lifecycle_trace.log.merge import DuplicateEngineError
from lifecycle_trace.log.merge import merge_logs
from lifecycle_trace.log.reader import ENGINE_KEY
from lifecycle_trace.log.reader import CorruptLogError
from lifecycle_trace.log.reader import LogReader
from lifecycle_trace.log.reader import SkippedLineWarning
from lifecycle_trace.log.reader import TruncatedLogWarning
from lifecycle_trace.log.reader import UnsupportedEventError
from lifecycle_trace.log.reader import iter_jsonl
from lifecycle_trace.log.sink import JsonlWriter
from lifecycle_trace.log.slice import SOURCE_SEQ_KEY
from lifecycle_trace.log.slice import StepRange
from lifecycle_trace.log.slice import parse_step_range
from lifecycle_trace.log.slice import slice_log
from lifecycle_trace.log.slice import slice_records
from lifecycle_trace.log.store import LoadedLog
from lifecycle_trace.log.store import read_jsonl
from lifecycle_trace.log.store import replay
from lifecycle_trace.log.store import write_jsonl

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
