"""Moved to :mod:`lifecycle_trace.log.eventlog`; this name keeps old imports working."""

from lifecycle_trace.log.eventlog import EventLog, Recorder, SequenceError, record

__all__ = ["EventLog", "Recorder", "SequenceError", "record"]
