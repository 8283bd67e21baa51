"""Moved to :mod:`lifecycle_trace.log.merge`; this import path keeps working."""

from lifecycle_trace.log.merge import *  # noqa: F403
from lifecycle_trace.log.merge import __all__ as __all__
