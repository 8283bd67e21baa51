"""Moved to :mod:`lifecycle_trace.fold.timeline`; this import path keeps working."""

from lifecycle_trace.fold.timeline import *  # noqa: F403
from lifecycle_trace.fold.timeline import __all__ as __all__
