"""The timeline picture without a browser: its elements, its scales and its refusals."""

from __future__ import annotations

import itertools
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from lifecycle_trace.export.plot import timeline_html
from lifecycle_trace.export.plot import timeline_svg
from lifecycle_trace.export.plot import write_plot
from lifecycle_trace.export.plot.layout import Layout
from lifecycle_trace.export.plot.layout import nice_step
from lifecycle_trace.export.plot.layout import status_color
from lifecycle_trace.fold.timeline import build_timelines
from minivllm.events import Event
from minivllm.events import RequestAdded

SVG = "{http://www.w3.org/2000/svg}"


def test_one_cell_per_segment_coloured_by_status(demo_events: list[Event]) -> None:
    root = ET.fromstring(timeline_svg(demo_events))
    cells = [r for r in root.iter(f"{SVG}rect") if "data-status" in r.attrib]
    timelines = build_timelines(demo_events)
    expected = sorted(
        (t.request_id, s.status.name, s.first_step, s.last_step)
        for t in timelines.values()
        for s in t.segments
    )
    got = sorted(
        (
            c.attrib["data-request"],
            c.attrib["data-status"],
            int(c.attrib["data-first-step"]),
            int(c.attrib["data-last-step"]),
        )
        for c in cells
    )
    assert got == expected
    for c in cells:
        status = next(
            s.status
            for t in timelines.values()
            for s in t.segments
            if t.request_id == c.attrib["data-request"] and s.status.name == c.attrib["data-status"]
        )
        assert c.attrib["fill"] == status_color(status)


def test_token_lines_follow_the_samples(demo_events: list[Event]) -> None:
    root = ET.fromstring(timeline_svg(demo_events))
    timelines = build_timelines(demo_events)
    lines = {
        (p.attrib["data-request"], p.attrib["data-series"]): p.attrib["points"]
        for p in root.iter(f"{SVG}polyline")
    }
    assert len(lines) == 2 * len(timelines)
    for rid, t in timelines.items():
        points = lines[(rid, "num_computed_tokens")].split()
        # The arrival point, then one point per step the request lived.
        assert len(points) == 1 + len(t.samples)
        ys = [float(p.split(",")[1]) for p in points]
        computed = [0, *(s.num_computed_tokens for s in t.samples)]
        # Higher counts are drawn higher up (smaller y), in the same order.
        pairs = list(zip(ys, computed, strict=True))
        for (ya, ca), (yb, cb) in itertools.pairwise(pairs):
            assert (ya > yb) == (ca < cb) and (ya == yb) == (ca == cb)


def test_rows_are_in_arrival_order_and_titles_escaped(demo_events: list[Event]) -> None:
    svg = timeline_svg(demo_events, title="a <b> & c")
    assert "<title>a &lt;b&gt; &amp; c</title>" in svg
    labels = re.findall(r'text-anchor="end">(r\d)</text>', svg)
    assert labels == [e.request_id for e in demo_events if isinstance(e, RequestAdded)]


def test_html_wraps_the_svg(demo_events: list[Event]) -> None:
    page = timeline_html(demo_events, title="demo")
    assert page.count("<svg") == 1 and "<title>demo</title>" in page


def test_write_plot_picks_the_format_by_suffix(demo_events: list[Event], tmp_path: Path) -> None:
    assert write_plot(demo_events, tmp_path / "t.svg") == "svg"
    assert write_plot(demo_events, tmp_path / "t.HTML") == "html"
    with pytest.raises(ValueError, match=r"use \.svg or \.html"):
        write_plot(demo_events, tmp_path / "t.png")


def test_a_log_without_requests_is_refused(demo_events: list[Event]) -> None:
    with pytest.raises(ValueError, match="no requests"):
        timeline_svg(demo_events[:1])


@pytest.mark.parametrize(
    ("span", "target", "step"), [(60, 5, 20.0), (7, 5, 2.0), (24, 17, 2.0), (1000, 4, 500.0)]
)
def test_nice_step(span: float, target: int, step: float) -> None:
    assert nice_step(span, target) == step


def test_layout_validates_and_scales() -> None:
    with pytest.raises(ValueError):
        Layout(num_requests=1, num_steps=0, max_tokens=5)
    layout = Layout(num_requests=2, num_steps=10, max_tokens=57)
    assert layout.token_top == 60
    assert layout.token_y(0) == layout.chart_bottom
    assert layout.token_y(60) == layout.chart_top
    assert layout.step_x(10) - layout.step_x(0) == layout.plot_width
    assert 480 <= layout.plot_width <= 960
    short = Layout(num_requests=1, num_steps=2, max_tokens=5)
    assert short.plot_width == 480
    long = Layout(num_requests=1, num_steps=5000, max_tokens=5)
    assert long.cell_width == 2.0


DOCS_IMAGE = Path(__file__).parents[2] / "docs" / "img" / "timeline-demo.svg"
DOCS_TITLE = "lifecycle-trace demo"


def test_the_docs_picture_is_what_the_library_draws(demo_events: list[Event]) -> None:
    # The picture depends on steps only, so the demo's log on any clock draws the same.
    assert DOCS_IMAGE.read_text(encoding="utf-8") == timeline_svg(demo_events, DOCS_TITLE), (
        "docs/img/timeline-demo.svg is stale: regenerate it with `lifecycle-trace demo --log "
        f"demo.jsonl` then `lifecycle-trace plot demo.jsonl -o {DOCS_IMAGE.name} --title "
        f"'{DOCS_TITLE}'`"
    )


def test_the_title_is_the_visible_heading(demo_events: list[Event]) -> None:
    root = ET.fromstring(timeline_svg(demo_events, title="Lab 01"))
    heading = next(t for t in root.iter(f"{SVG}text") if t.attrib.get("font-weight") == "bold")
    assert heading.text == "Lab 01"
    last_step = max(t.last_step for t in build_timelines(demo_events).values())
    size = f"{len(build_timelines(demo_events))} requests over {last_step + 1} engine steps"
    assert "".join(heading.itertext()) == f"Lab 01 · {size}"
