"""The timeline picture of an async scheduling log: in-flight marks, priorities, the mode."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from lifecycle_trace.export.plot import IN_FLIGHT_COLOR
from lifecycle_trace.export.plot import timeline_svg
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


def test_the_header_names_the_mode_and_labels_carry_priorities(
    async_demo_events: list[Event], demo_events: list[Event]
) -> None:
    svg = timeline_svg(async_demo_events)
    assert "chunking on · prefix cache off · async scheduling · priority policy" in svg
    root = ET.fromstring(svg)
    labels = {
        "".join(t.itertext())
        for t in root.iter(f"{SVG}text")
        if t.attrib.get("text-anchor") == "end" and any(True for _ in t.iter(f"{SVG}tspan"))
    }
    priorities = {rid: t.priority for rid, t in build_timelines(async_demo_events).items()}
    assert labels == {f"{rid} p{p}" for rid, p in priorities.items()}
    plain = timeline_svg(demo_events)
    assert "async scheduling" not in plain and "priority policy" not in plain


DOCS_IMAGE = Path(__file__).parents[2] / "docs" / "img" / "timeline-demo-async.svg"
DOCS_TITLE = "lifecycle-trace demo --async --policy priority"


def test_the_docs_picture_is_what_the_library_draws(async_demo_events: list[Event]) -> None:
    # The picture depends on steps only, so the demo's log on any clock draws the same.
    assert DOCS_IMAGE.read_text(encoding="utf-8") == timeline_svg(async_demo_events, DOCS_TITLE), (
        f"docs/img/{DOCS_IMAGE.name} is stale: regenerate it with `lifecycle-trace demo --async "
        f"--policy priority --log demo.jsonl` then `lifecycle-trace plot demo.jsonl -o "
        f"{DOCS_IMAGE.name} --title '{DOCS_TITLE}'`"
    )
