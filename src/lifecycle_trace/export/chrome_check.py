"""Moved to :mod:`lifecycle_trace.testing.chrome_check`; this import path keeps working."""

from lifecycle_trace.testing.chrome_check import *  # noqa: F403
from lifecycle_trace.testing.chrome_check import __all__ as __all__
