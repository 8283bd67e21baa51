"""The timeline picture: a self-contained SVG or HTML drawing of a log's requests.

:func:`picture_of` chooses what to draw (the fold's timelines of the first
requests added, of one engine or several); :func:`timeline_svg`,
:func:`timeline_html` and :func:`write_plot` draw it; :mod:`.layout` says
where everything goes, so tests can check the rendered pixels there.
"""

from lifecycle_trace.export.plot._picture import (
    Picture,
    layout_for,
    picture_of,
    plot_format,
    timeline_html,
    timeline_svg,
    write_plot,
)
from lifecycle_trace.export.plot.layout import (
    FINISHED_COLOR,
    IN_FLIGHT_COLOR,
    REQUEST_PALETTE,
    STATUS_COLORS,
    Layout,
    nice_step,
    status_color,
)

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
