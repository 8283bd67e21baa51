"""Moved to :mod:`lifecycle_trace.log.sink`; this name keeps old imports working."""

from lifecycle_trace.log.sink import *  # noqa: F403
from lifecycle_trace.log.sink import __all__ as __all__
