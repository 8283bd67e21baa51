"""Moved to :mod:`lifecycle_trace.log.slice`; this import path keeps working."""

from lifecycle_trace.log.slice import *  # noqa: F403
from lifecycle_trace.log.slice import __all__ as __all__
