"""The timeline picture: a self-contained SVG or HTML drawing of a log's requests.

:func:`picture_of` chooses what to draw (the fold's timelines of the first
requests added, of one engine or several); :func:`timeline_svg`,
:func:`timeline_html` and :func:`write_plot` draw it; :mod:`.layout` says
where everything goes, so tests can check the rendered pixels there.
"""

from lifecycle_trace.export.plot._picture import Picture
from lifecycle_trace.export.plot._picture import layout_for
from lifecycle_trace.export.plot._picture import picture_of
from lifecycle_trace.export.plot._picture import plot_format
from lifecycle_trace.export.plot._picture import timeline_html
from lifecycle_trace.export.plot._picture import timeline_svg
from lifecycle_trace.export.plot._picture import write_plot
from lifecycle_trace.export.plot.layout import FINISHED_COLOR
from lifecycle_trace.export.plot.layout import IN_FLIGHT_COLOR
from lifecycle_trace.export.plot.layout import REQUEST_PALETTE
from lifecycle_trace.export.plot.layout import STATUS_COLORS
from lifecycle_trace.export.plot.layout import Layout
from lifecycle_trace.export.plot.layout import nice_step
from lifecycle_trace.export.plot.layout import status_color

__all__ = [
    "FINISHED_COLOR",
    "IN_FLIGHT_COLOR",
    "REQUEST_PALETTE",
    "STATUS_COLORS",
    "Layout",
    "Picture",
    "layout_for",
    "nice_step",
    "picture_of",
    "plot_format",
    "status_color",
    "timeline_html",
    "timeline_svg",
    "write_plot",
]
