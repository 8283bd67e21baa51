"""The timeline picture: status per step for each request, and its token counts over steps.

Top: one row per request (in order of arrival), one cell per engine step,
coloured by the status the request ended that step in; the step it finished
in is grey, with the reason beside it. Bottom, on the same step axis: each
request's ``num_computed_tokens`` (solid) and ``num_tokens`` (dashed) at the
end of every step (plotted at the step's centre, from the left edge of the
step it arrived before), so the prefill jump, the slope-one decode line and a
preemption's drop to zero can be seen.

Written by hand as SVG with the standard library; :func:`timeline_html` wraps
it in a self-contained HTML page. Neither loads anything from anywhere:
no scripts, no fonts, no links. Hovering a cell or a line shows its details.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable
from html import escape
from pathlib import Path

from lifecycle_trace.export._svg import element, fmt, text
from lifecycle_trace.export.plot_layout import (
    FINISHED_COLOR,
    REQUEST_PALETTE,
    STATUS_COLORS,
    Layout,
    nice_step,
    status_color,
)
from lifecycle_trace.timeline import Timeline, TimelineBuilder
from minivllm.events import EngineConfigured, Event

__all__ = ["layout_for", "timeline_html", "timeline_svg", "write_plot"]

_FONT = "DejaVu Sans, Helvetica, Arial, sans-serif"
_INK = "#1f2933"
_MUTED = "#616e7c"
_GRID = "#e4e7eb"
_LEGEND_ITEM = 96.0


def _load(events: Iterable[Event]) -> tuple[list[Timeline], int, EngineConfigured | None]:
    builder = TimelineBuilder()
    builder.feed_all(events)
    timelines = list(builder.timelines().values())
    if not timelines:
        raise ValueError("the event log has no requests: there is nothing to draw")
    timelines.sort(key=lambda t: t.arrival_ns)
    return timelines, builder.last_step, builder.config


def layout_for(timelines: list[Timeline], last_step: int) -> Layout:
    """The picture's geometry for these timelines (in order of arrival) and last step."""
    max_tokens = max(max(t.change_tokens) for t in timelines)
    probe = Layout(len(timelines), last_step + 1, max(max_tokens, 1))
    per_line = max(1, int((probe.width - 40) // _LEGEND_ITEM))
    lines = math.ceil(len(timelines) / per_line)
    return Layout(len(timelines), last_step + 1, max(max_tokens, 1), legend_height=22 + 18 * lines)


def _header(
    layout: Layout,
    timelines: list[Timeline],
    config: EngineConfigured | None,
    title: str | None,
) -> str:
    n, steps = len(timelines), layout.num_steps
    size = f"{n} request{'s' * (n != 1)} over {steps} engine step{'s' * (steps != 1)}"
    heading = escape(title or "Request lifecycle", quote=False) + element(
        "tspan", escape(f" · {size}"), font_weight="normal", font_size=13, fill=_MUTED
    )
    parts = [element("text", heading, x=20.0, y=30.0, font_size=17, font_weight="bold", fill=_INK)]
    if config is not None:
        usable = config.num_gpu_blocks - 1
        parts.append(
            text(
                f"max_num_seqs {config.max_num_seqs} · {config.max_num_batched_tokens} "
                f"tokens/step · {usable} KV blocks of {config.block_size} · chunking "
                f"{'on' if config.enable_chunked_prefill else 'off'} · prefix cache "
                f"{'on' if config.enable_prefix_caching else 'off'}",
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


def _status_rows(layout: Layout, timelines: list[Timeline]) -> str:
    parts = []
    for i, t in enumerate(timelines):
        y = layout.row_y(i)
        color = REQUEST_PALETTE[i % len(REQUEST_PALETTE)]
        parts.append(element("rect", x=layout.left - 16, y=y + 5, width=8, height=8, fill=color))
        parts.append(
            text(
                t.request_id,
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
            tip = element("title", escape(f"{t.request_id}: {seg.status.name}, {steps}"))
            parts.append(
                element(
                    "rect",
                    tip,
                    x=x0,
                    y=y,
                    width=x1 - x0,
                    height=layout.row_height,
                    fill=status_color(seg.status),
                    data_request=t.request_id,
                    data_status=seg.status.name,
                    data_first_step=seg.first_step,
                    data_last_step=seg.last_step,
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


def _token_chart(layout: Layout, timelines: list[Timeline]) -> str:
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
    for i, t in enumerate(timelines):
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
            tip = element("title", escape(f"{t.request_id}: {what}, {final} at the end"))
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
                    data_request=t.request_id,
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


def _request_legend(layout: Layout, timelines: list[Timeline]) -> str:
    parts = []
    per_line = max(1, int((layout.width - 40) // _LEGEND_ITEM))
    top = layout.chart_bottom + 48
    for i, t in enumerate(timelines):
        x = 20 + (i % per_line) * _LEGEND_ITEM
        y = top + (i // per_line) * 18
        color = REQUEST_PALETTE[i % len(REQUEST_PALETTE)]
        parts.append(element("line", x1=x, x2=x + 22, y1=y, y2=y, stroke=color, stroke_width=3))
        parts.append(text(t.request_id, x=x + 28, y=y + 4, font_size=11, fill=_INK))
    return "".join(parts)


def timeline_svg(events: Iterable[Event], title: str | None = None) -> str:
    """The picture of a log as a standalone SVG document."""
    timelines, last_step, config = _load(events)
    layout = layout_for(timelines, last_step)
    body = "".join(
        [
            element("title", escape(title or "Request lifecycle timeline")),
            element("rect", x=0, y=0, width=layout.width, height=layout.height, fill="#ffffff"),
            _header(layout, timelines, config, title),
            _grid(layout),
            _step_axis(layout, layout.top - 8, label_below=False),
            _status_rows(layout, timelines),
            _token_chart(layout, timelines),
            _step_axis(layout, layout.chart_bottom + 14, label_below=True),
            _request_legend(layout, timelines),
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


def timeline_html(events: Iterable[Event], title: str | None = None) -> str:
    """The picture in a self-contained HTML page (the SVG inline, no external resources)."""
    heading = title or "Request lifecycle timeline"
    svg = timeline_svg(events, title=heading)
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
    events: Iterable[Event], path: str | os.PathLike[str], title: str | None = None
) -> str:
    """Write the picture to ``path``, as HTML for ``.html``/``.htm`` and SVG for ``.svg``."""
    suffix = Path(path).suffix.lower()
    if suffix == ".svg":
        content = timeline_svg(events, title)
    elif suffix in (".html", ".htm"):
        content = timeline_html(events, title)
    else:
        raise ValueError(
            f"cannot tell the picture format from {os.fspath(path)!r}: use .svg or .html"
        )
    Path(path).write_text(content, encoding="utf-8")
    return suffix.lstrip(".")
