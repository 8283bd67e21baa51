"""Moved to :mod:`lifecycle_trace.export.plot.layout`; this import path keeps working."""

from lifecycle_trace.export.plot.layout import (
    FINISHED_COLOR,
    REQUEST_PALETTE,
    STATUS_COLORS,
    Layout,
    nice_step,
    status_color,
)

__all__ = [
    "FINISHED_COLOR",
    "REQUEST_PALETTE",
    "STATUS_COLORS",
    "Layout",
    "nice_step",
    "status_color",
]
