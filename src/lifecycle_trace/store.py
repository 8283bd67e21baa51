"""Moved to :mod:`lifecycle_trace.log.store`; this name keeps old imports working."""

from lifecycle_trace.log.store import *  # noqa: F403
from lifecycle_trace.log.store import __all__ as __all__
