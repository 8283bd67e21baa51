"""The timeline picture of an async scheduling log: in-flight marks, priorities, the mode."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from lifecycle_trace.export.plot import IN_FLIGHT_COLOR, timeline_svg
from lifecycle_trace.fold.timeline import build_timelines
from minivllm.events import Event

SVG = "{http://www.w3.org/2000/svg}"


def _marks(svg: str) -> list[tuple[str, int, int]]:
    root = ET.fromstring(svg)
    return sorted(
        (r.attrib["data-request"], int(r.attrib["data-step"]), int(r.attrib["data-in-flight"]))
        for r in root.iter(f"{SVG}rect")
        if "data-in-flight" in r.attrib
    )


def test_one_mark_per_step_that_ends_with_a_batch_in_flight(
    async_demo_events: list[Event],
) -> None:
    svg = timeline_svg(async_demo_events)
    want = sorted(
        (rid, s.step, s.num_output_placeholders)
        for rid, t in build_timelines(async_demo_events).items()
        for s in t.samples
        if s.num_output_placeholders
    )
    assert want and _marks(svg) == want
    assert "batch in flight" in svg
    assert f'fill="{IN_FLIGHT_COLOR}"' in svg


def test_a_synchronous_picture_has_no_marks(demo_events: list[Event]) -> None:
    svg = timeline_svg(demo_events)
    assert _marks(svg) == []
    assert "batch in flight" not in svg
