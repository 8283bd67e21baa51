"""The Chrome trace under async scheduling: in-flight counters and priorities agree with the log."""

from __future__ import annotations

from typing import Any

from helpers.export import run_workload_logged
from helpers.trace import reference_v2
from lifecycle_trace.export.chrome import chrome_trace
from lifecycle_trace.fold.timeline import build_timelines
from lifecycle_trace.testing.chrome_check import validate_chrome_trace
from minivllm.events import Event
from minivllm.events import StepFinished


def _counters(trace: dict[str, Any], name: str) -> list[dict[str, Any]]:
    return [e for e in trace["traceEvents"] if e["ph"] == "C" and e["name"] == name]


def _at(track: list[dict[str, Any]], ts: float) -> int:
    """The track's value at ``ts`` (0 before its first sample)."""
    before = [c["args"]["num_output_placeholders"] for c in track if c["ts"] <= ts]
    return before[-1] if before else 0


def test_in_flight_tracks_follow_the_placeholders_at_every_step_end(
    async_demo_events: list[Event],
) -> None:
    trace = chrome_trace(async_demo_events)
    validate_chrome_trace(trace)
    origin = async_demo_events[0].ts_ns
    timelines = build_timelines(async_demo_events)
    total = _counters(trace, "in flight")
    assert total, "an async log has an engine-wide in-flight track"
    for end in (e for e in async_demo_events if isinstance(e, StepFinished)):
        ts = (end.ts_ns - origin) / 1000
        live = 0
        for rid, t in timelines.items():
            state = t.state_at(end.step)
            finished = t.finished_step is not None and end.step >= t.finished_step
            # A finished request's token still in flight is discarded: its track is back at 0.
            want = 0 if state is None or finished else state.num_output_placeholders
            assert _at(_counters(trace, f"req {rid} in flight"), ts) == want, (rid, end.step)
            live += want
        assert _at(total, ts) == live, end.step


def test_a_request_with_a_batch_in_flight_counts_two_while_the_step_runs(
    async_demo_events: list[Event],
) -> None:
    # Between schedule() and processing the previous batch, a decoding request holds two.
    trace = chrome_trace(async_demo_events)
    values = {c["args"]["num_output_placeholders"] for c in _counters(trace, "req r0 in flight")}
    assert values == {0, 1, 2}


def test_slices_carry_the_priority(async_demo_events: list[Event]) -> None:
    trace = chrome_trace(async_demo_events)
    timelines = build_timelines(async_demo_events)
    slices = [e for e in trace["traceEvents"] if e["ph"] == "X" and e.get("cat") == "status"]
    assert slices
    for s in slices:
        assert s["args"]["priority"] == timelines[s["args"]["request_id"]].priority


def test_a_synchronous_log_has_no_in_flight_tracks(demo_events: list[Event]) -> None:
    names = {e["name"] for e in chrome_trace(demo_events)["traceEvents"] if e["ph"] == "C"}
    assert not any("in flight" in name for name in names)


def test_a_token_in_flight_at_a_stop_leaves_the_tracks() -> None:
    # Example e: r1 stops on EOS at step 3 while the batch scheduled at step 3 samples for it.
    events = run_workload_logged(reference_v2("e_async"))
    assert build_timelines(events)["r1"].num_output_placeholders == 1
    trace = chrome_trace(events)
    validate_chrome_trace(trace)
    r1 = _counters(trace, "req r1 in flight")
    assert [c["args"]["num_output_placeholders"] for c in r1][-2:] == [1, 0]
    assert _counters(trace, "in flight")[-1]["args"]["num_output_placeholders"] == 0
