"""Moved to :mod:`lifecycle_trace.fold.phases`; this import path keeps working."""

from lifecycle_trace.fold.phases import *  # noqa: F403
from lifecycle_trace.fold.phases import __all__ as __all__
