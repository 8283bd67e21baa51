"""Moved to :mod:`lifecycle_trace.export.plot.layout`; this import path keeps working."""

from lifecycle_trace.export.plot.layout import FINISHED_COLOR
from lifecycle_trace.export.plot.layout import REQUEST_PALETTE
from lifecycle_trace.export.plot.layout import STATUS_COLORS
from lifecycle_trace.export.plot.layout import Layout
from lifecycle_trace.export.plot.layout import nice_step
from lifecycle_trace.export.plot.layout import status_color

__all__ = [
    "FINISHED_COLOR",
    "REQUEST_PALETTE",
    "STATUS_COLORS",
    "Layout",
    "nice_step",
    "status_color",
]
