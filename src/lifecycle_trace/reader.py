"""Moved to :mod:`lifecycle_trace.log.reader`; this name keeps old imports working."""

from lifecycle_trace.log.reader import *  # noqa: F403
from lifecycle_trace.log.reader import __all__ as __all__
from lifecycle_trace.log.reader import classify as classify
