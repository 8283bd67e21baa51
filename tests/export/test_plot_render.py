"""The timeline picture rendered by headless Chromium: the right colours in the right places.

The rendering tests are opt-in (they need a browser): set
``LIFECYCLE_TRACE_BROWSER_TESTS=1`` with chromium installed.
"""

from __future__ import annotations

import itertools
import re
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from PIL import Image

from lifecycle_trace.export.plot import layout_for
from lifecycle_trace.export.plot import write_plot
from lifecycle_trace.export.plot.layout import FINISHED_COLOR
from lifecycle_trace.export.plot.layout import IN_FLIGHT_COLOR
from lifecycle_trace.export.plot.layout import REQUEST_PALETTE
from lifecycle_trace.export.plot.layout import Layout
from lifecycle_trace.export.plot.layout import status_color
from lifecycle_trace.fold.timeline import Timeline
from lifecycle_trace.fold.timeline import TimelineBuilder
from minivllm.events import Event
from minivllm.request import RequestStatus

FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    "--force-device-scale-factor=1",
)


def _chromium(binary: str, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    profile = tmp_path / "profile"
    argv = [binary, *FLAGS, f"--user-data-dir={profile}", *args]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return done


def _screenshot(binary: str, tmp_path: Path, page: Path, width: int, height: int) -> Image.Image:
    png = tmp_path / f"{page.stem}-{page.suffix.lstrip('.')}.png"
    _chromium(
        binary, tmp_path, f"--screenshot={png}", f"--window-size={width},{height}", page.as_uri()
    )
    with Image.open(png) as image:
        return image.convert("RGB")


def _pixel(image: Image.Image, x: float, y: float) -> tuple[int, int, int]:
    """The colour at ``(x, y)`` (rounded down to whole pixels)."""
    r, g, b = image.getpixel((int(x), int(y)))
    return r, g, b


def hex_rgb(color: str) -> tuple[int, int, int]:
    """``#rrggbb`` as a tuple."""
    return int(color[1:3], 16), int(color[3:5], 16), int(color[5:7], 16)


def near(a: tuple[int, int, int], b: tuple[int, int, int], tolerance: int = 12) -> bool:
    """Whether two colours differ by at most ``tolerance`` in every channel."""
    return all(abs(x - y) <= tolerance for x, y in zip(a, b, strict=True))


def _picture(events: list[Event]) -> tuple[list[Timeline], Layout]:
    builder = TimelineBuilder()
    builder.feed_all(events)
    timelines = sorted(builder.timelines().values(), key=lambda t: t.arrival_ns)
    return timelines, layout_for(timelines, builder.last_step)


def _check_cells(
    image: Image.Image, timelines: list[Timeline], layout: Layout, offset: float = 0
) -> None:
    """Every step cell of every row has its status colour; left of arrival is blank."""
    seen = set()
    for i, t in enumerate(timelines):
        y = offset + layout.row_y(i) + layout.row_height / 2
        for step in range(t.added_step, t.last_step + 1):
            sample = t.state_at(step)
            assert sample is not None
            got = _pixel(image, offset + layout.step_x(step + 0.5), y)
            assert near(got, hex_rgb(status_color(sample.status))), (t.request_id, step, got)
            seen.add(sample.status)
        if t.added_step > 0:
            blank = _pixel(image, offset + layout.step_x(t.added_step) - 3, y)
            assert near(blank, (255, 255, 255)), (t.request_id, "before arrival", blank)
    assert {RequestStatus.WAITING, RequestStatus.RUNNING, RequestStatus.PREEMPTED} <= seen


def _svg_with_its_cells_checked(
    chromium: str, events: list[Event], tmp_path: Path
) -> tuple[Image.Image, list[Timeline], Layout]:
    """``events`` drawn as an SVG and rendered; every cell checked (:func:`_check_cells`)."""
    page = tmp_path / "timeline.svg"
    write_plot(events, page)
    timelines, layout = _picture(events)
    size = (int(layout.width) + 20, int(layout.height) + 20)
    image = _screenshot(chromium, tmp_path, page, *size)
    _check_cells(image, timelines, layout)
    return image, timelines, layout


def test_svg_cells_and_lines_are_drawn_where_the_layout_says(
    chromium: str, demo_events: list[Event], tmp_path: Path
) -> None:
    image, timelines, layout = _svg_with_its_cells_checked(chromium, demo_events, tmp_path)
    # r1's prefill: a steep solid line from 20 to 50 computed tokens between steps 0 and 1.
    r1 = next(i for i, t in enumerate(timelines) if t.request_id == "r1")
    a, b = timelines[r1].state_at(0), timelines[r1].state_at(1)
    assert a is not None and b is not None and b.num_computed_tokens - a.num_computed_tokens > 10
    x = (layout.sample_x(0) + layout.sample_x(1)) / 2
    y = (layout.token_y(a.num_computed_tokens) + layout.token_y(b.num_computed_tokens)) / 2
    around = [_pixel(image, x + dx, y) for dx in (-1, 0, 1)]
    assert any(near(p, hex_rgb(REQUEST_PALETTE[r1]), 40) for p in around), around


def test_html_is_self_contained_and_renders(
    chromium: str, demo_events: list[Event], tmp_path: Path
) -> None:
    page = tmp_path / "timeline.html"
    write_plot(demo_events, page)
    source = page.read_text()
    assert not re.search(r"<(script|link|img|iframe)\b", source)
    assert not re.search(r"(href|src)\s*=|url\(|@import", source)
    dom = _chromium(chromium, tmp_path, "--dump-dom", page.as_uri()).stdout
    timelines, layout = _picture(demo_events)
    cells = re.findall(r'<rect[^>]*data-status="([A-Z_]+)"', dom)
    segments = itertools.chain.from_iterable(t.segments for t in timelines)
    assert sorted(cells) == sorted(s.status.name for s in segments)
    series = re.findall(r'<polyline[^>]*data-series="([a-z_]+)"', dom)
    assert sorted(series) == sorted(["num_computed_tokens", "num_tokens"] * len(timelines))
    size = (int(layout.width) + 60, int(layout.height) + 120)
    image = _screenshot(chromium, tmp_path, page, *size)
    # The page's 16 px padding and the figure's 1 px border put the picture at (17, 17).
    _check_cells(image, timelines, layout, offset=17)
    colors = [color for _, color in image.getcolors(maxcolors=image.width * image.height)]
    assert any(near(c, hex_rgb(FINISHED_COLOR), 2) for c in colors)


@pytest.mark.parametrize("suffix", [".svg", ".html"])
def test_written_file_parses(demo_events: list[Event], tmp_path: Path, suffix: str) -> None:
    page = tmp_path / f"t{suffix}"
    write_plot(demo_events, page)
    if suffix == ".svg":
        root = ET.fromstring(page.read_text())
        assert root.tag == "{http://www.w3.org/2000/svg}svg"
    else:
        assert page.read_text().startswith("<!DOCTYPE html>")


def test_in_flight_marks_are_drawn_below_the_cell_centres(
    chromium: str, async_demo_events: list[Event], tmp_path: Path
) -> None:
    # The marks leave every cell's centre its colour.
    image, timelines, layout = _svg_with_its_cells_checked(chromium, async_demo_events, tmp_path)
    marked = 0
    for i, t in enumerate(timelines):
        for step in t.in_flight_steps:
            x, y, width, height = layout.in_flight_mark(i, step)
            got = _pixel(image, x + width / 2, y + height / 2)
            assert near(got, hex_rgb(IN_FLIGHT_COLOR), 20), (t.request_id, step, got)
            marked += 1
    assert marked > 0
