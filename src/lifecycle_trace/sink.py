"""Moved to :mod:`lifecycle_trace.log.sink`; this name keeps old imports working."""

from lifecycle_trace.log.sink import JsonlWriter

__all__ = ["JsonlWriter"]
