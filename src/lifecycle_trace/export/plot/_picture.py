"""The timeline picture: status per step for each request, and its token counts over steps.

Top: one row per request (in order of arrival), one cell per engine step,
coloured by the status the request ended that step in; the step it finished
in is grey, with the reason beside it. Under async scheduling a dark bar
along the bottom of a cell marks a step that ended with a batch in flight
for the request (``num_output_placeholders > 0``); a request's priority,
when any request has one other than 0, follows its label. Bottom, on the same step axis: each
request's ``num_computed_tokens`` (solid) and ``num_tokens`` (dashed) at the
end of every step (plotted at the step's centre, from the left edge of the
step it arrived before), so the prefill jump, the slope-one decode line and a
preemption's drop to zero can be seen.

The rows are the fold's timelines (:func:`picture_of`): of the first
``limit`` requests added, so a picture of a long log stays legible, and of
every engine of a merged log, each row then named ``ENGINE/ID``.

Written by hand as SVG with the standard library; :func:`timeline_html` wraps
it in a self-contained HTML page. Neither loads anything from anywhere:
no scripts, no fonts, no links. Hovering a cell or a line shows its details.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable
from collections.abc import Sequence
from pathlib import Path

import attrs

from lifecycle_trace._output import open_replacing
from lifecycle_trace.export.plot._svg import element
from lifecycle_trace.export.plot._svg import escape
from lifecycle_trace.export.plot._svg import fmt
from lifecycle_trace.export.plot._svg import text
from lifecycle_trace.export.plot.layout import FINISHED_COLOR
from lifecycle_trace.export.plot.layout import IN_FLIGHT_COLOR
from lifecycle_trace.export.plot.layout import REQUEST_PALETTE
from lifecycle_trace.export.plot.layout import STATUS_COLORS
from lifecycle_trace.export.plot.layout import Layout
from lifecycle_trace.export.plot.layout import nice_step
from lifecycle_trace.export.plot.layout import status_color
from lifecycle_trace.fold.requests import LogFold
from lifecycle_trace.fold.requests import Source
from lifecycle_trace.fold.timeline import Timeline
from lifecycle_trace.fold.timeline import life_labels
from lifecycle_trace.fold.timeline import timeline_of
from minivllm.events import EngineConfigured
from minivllm.events import RequestAdded
from minivllm.request import RequestStatus

__all__ = [
    "Picture",
    "layout_for",
    "picture_of",
    "plot_format",
    "timeline_html",
    "timeline_svg",
    "write_plot",
]

_FONT = "DejaVu Sans, Helvetica, Arial, sans-serif"
_INK = "#1f2933"
_MUTED = "#616e7c"
_GRID = "#e4e7eb"
_LEGEND_ITEM = 96.0


@attrs.frozen
class Picture:
    """What a picture draws: timelines in order of arrival, their row labels, the step axis."""

    timelines: tuple[Timeline, ...]
    labels: tuple[str, ...]
    last_step: int
    config: EngineConfigured | None
    num_requests: int
    """Requests in the log, drawn or not."""

    @property
    def num_left_out(self) -> int:
        """Requests of the log the picture does not draw."""
        return self.num_requests - len(self.timelines)

    @property
    def has_batches_in_flight(self) -> bool:
        """Whether any drawn request ended a step with a batch in flight (async scheduling)."""
        return any(any(t.change_placeholders) for t in self.timelines)

    @property
    def has_priorities(self) -> bool:
        """Whether any drawn request has a priority other than 0."""
        return any(t.priority for t in self.timelines)


def picture_of(source: Source, limit: int = 0) -> Picture:
    """The picture of a log: its first ``limit`` requests added (0: all), of every engine.

    Raises ``ValueError`` for a log without requests.
    """
    if limit < 0:
        raise ValueError(f"limit must be 0 (all) or more, got {limit}")
    chosen = 0

    def first(_: RequestAdded) -> bool:
        nonlocal chosen
        chosen += 1
        return chosen <= limit

    folds = LogFold(select=first if limit else None)
    folds.feed_all(source)
    timelines = [
        timeline_of(t, fold.last_step) for fold in folds.folds.values() for t in fold.states()
    ]
    if not timelines:
        raise ValueError("the event log has no requests: there is nothing to draw")
    timelines.sort(key=lambda t: (t.arrival_ns, t.engine_id, t.added_seq))
    engines = len(folds.folds)
    num_requests = folds.num_added
    # A picture of some requests ends with them; of all of them, with the log.
    if num_requests > len(timelines):
        last_step = max(t.last_step for t in timelines)
    else:
        last_step = folds.last_step
    labels = life_labels(timelines, engines=engines > 1)
    config = next(iter(folds.folds.values())).config if engines == 1 else None
    return Picture(tuple(timelines), tuple(labels), last_step, config, num_requests)


def layout_for(timelines: Sequence[Timeline], last_step: int) -> Layout:
    """The picture's geometry for these timelines (in order of arrival) and last step."""
    max_tokens = max(max(t.change_tokens) for t in timelines)
    probe = Layout(len(timelines), last_step + 1, max(max_tokens, 1))
    per_line = max(1, int((probe.width - 40) // _LEGEND_ITEM))
    lines = math.ceil(len(timelines) / per_line)
    return Layout(len(timelines), last_step + 1, max(max_tokens, 1), legend_height=22 + 18 * lines)


def _header(layout: Layout, picture: Picture, title: str | None) -> str:
    n, steps = len(picture.timelines), layout.num_steps
    config = picture.config
    size = f"{n} request{'s' * (n != 1)} over {steps} engine step{'s' * (steps != 1)}"
    heading = escape(title or "Request lifecycle", quote=False) + element(
        "tspan", escape(f" · {size}"), font_weight="normal", font_size=13, fill=_MUTED
    )
    parts = [element("text", heading, x=20.0, y=30.0, font_size=17, font_weight="bold", fill=_INK)]
    if config is not None:
        usable = config.num_gpu_blocks - 1
        modes = ""
        if config.async_scheduling:
            modes += " · async scheduling"
        if config.policy == "priority":
            modes += " · priority policy"
        parts.append(
            text(
                f"max_num_seqs {config.max_num_seqs} · {config.max_num_batched_tokens} "
                f"tokens/step · {usable} KV blocks of {config.block_size} · chunking "
                f"{'on' if config.enable_chunked_prefill else 'off'} · prefix cache "
                f"{'on' if config.enable_prefix_caching else 'off'}{modes}",
                x=20.0,
                y=50.0,
                font_size=12,
                fill=_MUTED,
            )
        )
    x = 20.0
    swatches = [*((s.name, c) for s, c in STATUS_COLORS.items()), ("FINISHED", FINISHED_COLOR)]
    for label, color in swatches:
        parts.append(element("rect", x=x, y=62.0, width=14, height=14, rx=2, fill=color))
        parts.append(text(label, x=x + 19, y=73.5, font_size=12, fill=_INK))
        x += 19 + 8 * len(label) + 22
    if picture.has_batches_in_flight:
        label = "batch in flight"
        parts.append(
            element(
                "rect",
                x=x,
                y=62.0,
                width=14,
                height=14,
                rx=2,
                fill=STATUS_COLORS[RequestStatus.RUNNING],
            )
        )
        parts.append(element("rect", x=x + 3, y=72.0, width=8, height=3, fill=IN_FLIGHT_COLOR))
        parts.append(text(label, x=x + 19, y=73.5, font_size=12, fill=_INK))
    return "".join(parts)


def _step_axis(layout: Layout, y: float, label_below: bool) -> str:
    every = max(1, int(nice_step(layout.num_steps, max(1, int(layout.plot_width // 48)))))
    parts = []
    for step in range(0, layout.num_steps, every):
        x = layout.step_x(step + 0.5)
        parts.append(text(str(step), x=x, y=y, font_size=10, fill=_MUTED, text_anchor="middle"))
    if label_below:
        parts.append(
            text(
                "engine step",
                x=layout.left + layout.plot_width / 2,
                y=y + 16,
                font_size=11,
                fill=_MUTED,
                text_anchor="middle",
            )
        )
    return "".join(parts)


def _status_rows(layout: Layout, picture: Picture) -> str:
    parts = []
    priorities = picture.has_priorities
    for i, (t, label) in enumerate(zip(picture.timelines, picture.labels, strict=True)):
        y = layout.row_y(i)
        color = REQUEST_PALETTE[i % len(REQUEST_PALETTE)]
        parts.append(element("rect", x=layout.left - 16, y=y + 5, width=8, height=8, fill=color))
        shown = escape(label, quote=False)
        if priorities:
            shown += element("tspan", f" p{t.priority}", fill=_MUTED, font_size=10)
        parts.append(
            element(
                "text",
                shown,
                x=layout.left - 22,
                y=y + layout.row_height - 5,
                font_size=12,
                fill=_INK,
                text_anchor="end",
            )
        )
        for seg in t.segments:
            x0, x1 = layout.step_x(seg.first_step), layout.step_x(seg.last_step + 1)
            steps = (
                f"step {seg.first_step}"
                if seg.num_steps == 1
                else (f"steps {seg.first_step}-{seg.last_step}")
            )
            tip = element("title", escape(f"{label}: {seg.status.name}, {steps}"))
            parts.append(
                element(
                    "rect",
                    tip,
                    x=x0,
                    y=y,
                    width=x1 - x0,
                    height=layout.row_height,
                    fill=status_color(seg.status),
                    data_request=label,
                    data_status=seg.status.name,
                    data_first_step=seg.first_step,
                    data_last_step=seg.last_step,
                )
            )
        for s in t.samples:
            if s.num_output_placeholders:
                x, my, width, height = layout.in_flight_mark(i, s.step)
                tip = element(
                    "title",
                    escape(
                        f"{label}: a batch in flight at the end of step {s.step} "
                        f"(num_output_placeholders {s.num_output_placeholders})"
                    ),
                )
                parts.append(
                    element(
                        "rect",
                        tip,
                        x=x,
                        y=my,
                        width=width,
                        height=height,
                        fill=IN_FLIGHT_COLOR,
                        data_request=label,
                        data_in_flight=s.num_output_placeholders,
                        data_step=s.step,
                    )
                )
        if t.finish_reason is not None:
            parts.append(
                text(
                    t.finish_reason,
                    x=layout.step_x(t.last_step + 1) + 4,
                    y=y + layout.row_height - 5,
                    font_size=11,
                    fill=_MUTED,
                )
            )
    return "".join(parts)


def _grid(layout: Layout) -> str:
    every = max(1, int(nice_step(layout.num_steps, max(1, int(layout.plot_width // 48)))))
    parts = []
    for step in range(0, layout.num_steps + 1, every):
        x = layout.step_x(step)
        for top, bottom in (
            (layout.top - 4, layout.rows_bottom + 4),
            (layout.chart_top, layout.chart_bottom),
        ):
            parts.append(element("line", x1=x, x2=x, y1=top, y2=bottom, stroke=_GRID))
    return "".join(parts)


def _token_chart(layout: Layout, picture: Picture) -> str:
    parts = [
        text(
            "tokens at the end of each step: num_computed_tokens (solid), num_tokens (dashed)",
            x=layout.left,
            y=layout.chart_top - 12,
            font_size=12,
            fill=_INK,
        )
    ]
    tick = layout.token_step
    value = 0.0
    while value <= layout.token_top + 1e-9:
        y = layout.token_y(value)
        parts.append(
            element(
                "line", x1=layout.left, x2=layout.left + layout.plot_width, y1=y, y2=y, stroke=_GRID
            )
        )
        parts.append(
            text(
                f"{value:g}",
                x=layout.left - 8,
                y=y + 4,
                font_size=10,
                fill=_MUTED,
                text_anchor="end",
            )
        )
        value += tick
    for i, (t, label) in enumerate(zip(picture.timelines, picture.labels, strict=True)):
        color = REQUEST_PALETTE[i % len(REQUEST_PALETTE)]
        samples = t.samples
        start = layout.step_x(t.added_step)
        computed = [(start, layout.token_y(0))]
        tokens = [(start, layout.token_y(t.num_prompt_tokens))]
        for s in samples:
            x = layout.sample_x(s.step)
            computed.append((x, layout.token_y(s.num_computed_tokens)))
            tokens.append((x, layout.token_y(s.num_tokens)))
        for points, dash, what, final in (
            (tokens, "5 4", "num_tokens", t.num_tokens),
            (computed, None, "num_computed_tokens", t.num_computed_tokens),
        ):
            tip = element("title", escape(f"{label}: {what}, {final} at the end"))
            parts.append(
                element(
                    "polyline",
                    tip,
                    points=" ".join(f"{fmt(x)},{fmt(y)}" for x, y in points),
                    fill="none",
                    stroke=color,
                    stroke_width=2,
                    stroke_dasharray=dash,
                    stroke_linejoin="round",
                    data_request=label,
                    data_series=what,
                )
            )
    parts.append(
        element(
            "line",
            x1=layout.left,
            x2=layout.left + layout.plot_width,
            y1=layout.chart_bottom,
            y2=layout.chart_bottom,
            stroke=_MUTED,
        )
    )
    return "".join(parts)


def _request_legend(layout: Layout, picture: Picture) -> str:
    parts = []
    per_line = max(1, int((layout.width - 40) // _LEGEND_ITEM))
    top = layout.chart_bottom + 48
    for i, label in enumerate(picture.labels):
        x = 20 + (i % per_line) * _LEGEND_ITEM
        y = top + (i // per_line) * 18
        color = REQUEST_PALETTE[i % len(REQUEST_PALETTE)]
        parts.append(element("line", x1=x, x2=x + 22, y1=y, y2=y, stroke=color, stroke_width=3))
        parts.append(text(label, x=x + 28, y=y + 4, font_size=11, fill=_INK))
    return "".join(parts)


def timeline_svg(source: Source | Picture, title: str | None = None) -> str:
    """The picture of a log (every request) as a standalone SVG document."""
    picture = source if isinstance(source, Picture) else picture_of(source)
    layout = layout_for(picture.timelines, picture.last_step)
    body = "".join(
        [
            element("title", escape(title or "Request lifecycle timeline")),
            element("rect", x=0, y=0, width=layout.width, height=layout.height, fill="#ffffff"),
            _header(layout, picture, title),
            _grid(layout),
            _step_axis(layout, layout.top - 8, label_below=False),
            _status_rows(layout, picture),
            _token_chart(layout, picture),
            _step_axis(layout, layout.chart_bottom + 14, label_below=True),
            _request_legend(layout, picture),
        ]
    )
    return (
        element(
            "svg",
            body,
            xmlns="http://www.w3.org/2000/svg",
            width=layout.width,
            height=layout.height,
            viewBox=f"0 0 {fmt(layout.width)} {fmt(layout.height)}",
            font_family=_FONT,
        )
        + "\n"
    )


def timeline_html(source: Source | Picture, title: str | None = None) -> str:
    """The picture in a self-contained HTML page (the SVG inline, no external resources)."""
    heading = title or "Request lifecycle timeline"
    svg = timeline_svg(source, title=heading)
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{escape(heading)}</title>\n"
        "<style>body{margin:0;padding:16px;background:#f5f7fa;font-family:"
        f"{_FONT};color:{_INK}}}"
        "figure{margin:0;display:inline-block;background:#fff;border:1px solid #d9dee4}"
        "figcaption{padding:8px 20px 14px;font-size:13px;color:#52606d;max-width:60em}"
        "</style>\n</head>\n<body>\n<figure>\n"
        f"{svg}"
        "<figcaption>Top: the status each request ended each engine step in. Bottom: its "
        "num_computed_tokens and num_tokens at the end of each step. Hover a cell or a line "
        "for details.</figcaption>\n</figure>\n</body>\n</html>\n"
    )


def write_plot(
    source: Source | Picture,
    path: str | os.PathLike[str],
    title: str | None = None,
    inputs: Iterable[str | os.PathLike[str]] = (),
) -> str:
    """Write the picture to ``path``, as HTML for ``.html``/``.htm`` and SVG for ``.svg``.

    Returns the format written (``"svg"``, ``"html"`` or ``"htm"``). ``path``
    is replaced only once the picture is whole, and never when it is one of
    ``inputs`` (:mod:`lifecycle_trace._output`).
    """
    kind = plot_format(path)
    picture = source if isinstance(source, Picture) else picture_of(source)
    content = timeline_svg(picture, title) if kind == "svg" else timeline_html(picture, title)
    with open_replacing(path, inputs) as f:
        f.write(content)
    return kind


def plot_format(path: str | os.PathLike[str]) -> str:
    """The picture format a path's suffix asks for: ``"svg"``, ``"html"`` or ``"htm"``."""
    suffix = Path(path).suffix.lower()
    if suffix not in (".svg", ".html", ".htm"):
        raise ValueError(
            f"cannot tell the picture format from {os.fspath(path)!r}: use .svg or .html"
        )
    return suffix.lstrip(".")
