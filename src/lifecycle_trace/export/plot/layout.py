"""Where the timeline picture puts things: colours, sizes and the step and token scales.

Kept apart from the drawing so tests can ask where a request's row or a step's
column is, and check the rendered pixels there.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import ClassVar

import attrs

from minivllm.request import RequestStatus

__all__ = [
    "FINISHED_COLOR",
    "IN_FLIGHT_COLOR",
    "REQUEST_PALETTE",
    "STATUS_COLORS",
    "Layout",
    "nice_step",
    "status_color",
]

STATUS_COLORS: Mapping[RequestStatus, str] = {
    RequestStatus.WAITING: "#f4b942",
    RequestStatus.RUNNING: "#2f6fdf",
    RequestStatus.PREEMPTED: "#d62839",
}
"""Fill colour of a step cell by the status the request ended the step in."""

FINISHED_COLOR = "#9aa5b1"
"""Fill colour of the step in which a request finished (any reason)."""

IN_FLIGHT_COLOR = "#10203f"
"""Colour of the mark along the bottom of a step cell that ended with a batch in flight."""

REQUEST_PALETTE = (
    "#4e79a7", "#f28e2b", "#59a14f", "#b07aa1", "#e15759",
    "#76b7b2", "#9c755f", "#edc948", "#ff9da7", "#bab0ac",
)  # fmt: skip
"""Line colours of the token chart, one per request in order of arrival (cycled)."""


def status_color(status: RequestStatus) -> str:
    """The fill colour for a step cell whose end-of-step status is ``status``."""
    return STATUS_COLORS.get(status, FINISHED_COLOR)


def nice_step(span: float, target: int) -> float:
    """A 1, 2 or 5 times a power of ten that cuts ``span`` into about ``target`` ticks."""
    if span <= 0:
        return 1.0
    raw = span / max(target, 1)
    power = 10 ** math.floor(math.log10(raw))
    for factor in (1, 2, 5, 10):
        if factor * power >= raw:
            return float(factor * power)
    return float(10 * power)  # unreachable: factor 10 always covers raw


@attrs.frozen
class Layout:
    """The geometry of one picture, in SVG user units (pixels at 100% zoom)."""

    num_requests: int = attrs.field(validator=attrs.validators.ge(0))
    num_steps: int = attrs.field(validator=attrs.validators.ge(1))
    max_tokens: int = attrs.field(validator=attrs.validators.ge(1))
    legend_height: float = 60.0
    """Room under the chart for the legend (one line of 18 px per line of legend entries)."""

    # The fixed geometry, the same in every picture.
    left: ClassVar[float] = 110.0
    """Room left of the step axis, for the request labels."""
    right: ClassVar[float] = 70.0
    """Room right of the step axis, for the token scale's labels."""
    top: ClassVar[float] = 96.0
    """Where the first request row starts: below the title and the step axis."""
    row_height: ClassVar[float] = 18.0
    row_gap: ClassVar[float] = 4.0
    """Space between two request rows."""
    chart_gap: ClassVar[float] = 64.0
    """Space between the last request row and the token chart."""
    chart_height: ClassVar[float] = 240.0
    """Height of the token chart (``num_computed_tokens`` and ``num_tokens`` per step)."""

    @property
    def cell_width(self) -> float:
        """Width of one step's column: an axis of 480 to 960 px, but never under 2 px a step."""
        n = self.num_steps
        return max(2.0, min(960.0 / n, max(28.0, 480.0 / n)))

    @property
    def plot_width(self) -> float:
        """Width of the step axis."""
        return self.cell_width * self.num_steps

    @property
    def width(self) -> float:
        """Width of the whole picture."""
        return self.left + self.plot_width + self.right

    def step_x(self, step: float) -> float:
        """The x of the left edge of ``step``'s column (``step + 1`` is its right edge)."""
        return self.left + step * self.cell_width

    def sample_x(self, step: int) -> float:
        """The x at which the token chart plots the state at the end of ``step``."""
        return self.step_x(step + 0.5)

    def in_flight_mark(self, index: int, step: int) -> tuple[float, float, float, float]:
        """``(x, y, width, height)`` of the in-flight mark of a row's step cell.

        A bar along the bottom fifth of the cell, clear of the cell's centre.
        """
        width = self.cell_width * 0.6
        x = self.step_x(step) + (self.cell_width - width) / 2
        height = self.row_height / 5
        return x, self.row_y(index) + self.row_height - height - 1, width, height

    def row_y(self, index: int) -> float:
        """The top of the ``index``-th request's row (in order of arrival)."""
        return self.top + index * (self.row_height + self.row_gap)

    @property
    def rows_bottom(self) -> float:
        """The bottom of the status rows."""
        return self.row_y(self.num_requests) - self.row_gap

    @property
    def chart_top(self) -> float:
        """The top of the token chart."""
        return self.rows_bottom + self.chart_gap

    @property
    def chart_bottom(self) -> float:
        """The token chart's zero line."""
        return self.chart_top + self.chart_height

    @property
    def token_step(self) -> float:
        """Distance between the token axis's ticks (whole tokens only)."""
        return max(1.0, nice_step(self.max_tokens, 5))

    @property
    def token_top(self) -> float:
        """The token count at the top of the chart: the largest, rounded up to a tick."""
        return math.ceil(self.max_tokens / self.token_step) * self.token_step

    def token_y(self, tokens: float) -> float:
        """The y of a token count on the chart."""
        return self.chart_bottom - tokens / self.token_top * self.chart_height

    @property
    def height(self) -> float:
        """Height of the whole picture."""
        return self.chart_bottom + 40.0 + self.legend_height
