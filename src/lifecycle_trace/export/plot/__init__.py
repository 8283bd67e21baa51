"""The timeline picture: a self-contained SVG or HTML drawing of a log's requests.

:func:`picture_of` chooses what to draw (the fold's timelines of the first
requests added, of one engine or several); :func:`timeline_svg`,
:func:`timeline_html` and :func:`write_plot` draw it; :mod:`.layout` says
where everything goes, so tests can check the rendered pixels there.
"""

from lifecycle_trace.export.plot import _picture
from lifecycle_trace.export.plot import layout
from lifecycle_trace.export.plot._picture import *  # noqa: F403
from lifecycle_trace.export.plot.layout import *  # noqa: F403

__all__ = [*_picture.__all__, *layout.__all__]
