"""Moved to :mod:`lifecycle_trace.log.eventlog`; this name keeps old imports working."""

from lifecycle_trace.log.eventlog import *  # noqa: F403
from lifecycle_trace.log.eventlog import __all__ as __all__
