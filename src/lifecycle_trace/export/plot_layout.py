"""Moved to :mod:`lifecycle_trace.export.plot.layout`; this import path keeps working."""

from lifecycle_trace.export.plot.layout import *  # noqa: F403
from lifecycle_trace.export.plot.layout import __all__ as __all__
