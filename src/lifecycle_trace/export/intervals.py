"""Moved to :mod:`lifecycle_trace.fold.intervals`; this import path keeps working."""

from lifecycle_trace.fold.intervals import *  # noqa: F403
from lifecycle_trace.fold.intervals import __all__ as __all__
