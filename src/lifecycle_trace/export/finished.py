"""Moved to :mod:`lifecycle_trace.fold.finished`; this import path keeps working."""

from lifecycle_trace.fold.finished import finished_requests

__all__ = [
    "finished_requests",
]
