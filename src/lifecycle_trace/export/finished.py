"""Moved to :mod:`lifecycle_trace.fold.finished`; this import path keeps working."""

from lifecycle_trace.fold.finished import *  # noqa: F403
from lifecycle_trace.fold.finished import __all__ as __all__
