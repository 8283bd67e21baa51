"""Moved to :mod:`lifecycle_trace.fold.stats`; this import path keeps working."""

from lifecycle_trace.fold.stats import *  # noqa: F403
from lifecycle_trace.fold.stats import __all__ as __all__
