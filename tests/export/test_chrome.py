"""The Chrome / Perfetto trace: its rows, slices, finish marks and counters agree with the log."""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import settings

from helpers.export import run_scenario_logged
from lifecycle_trace.export.chrome import ENGINE_TID
from lifecycle_trace.export.chrome import PID
from lifecycle_trace.export.chrome import chrome_trace
from lifecycle_trace.export.chrome import write_chrome_trace
from lifecycle_trace.fold.timeline import build_timelines
from lifecycle_trace.testing import Scenario
from lifecycle_trace.testing import scenarios
from lifecycle_trace.testing.chrome_check import validate_chrome_trace
from minivllm.events import Event
from minivllm.events import RequestAdded
from minivllm.events import StepFinished
from minivllm.request import RequestStatus


def _by_phase(trace: dict[str, Any], ph: str) -> list[dict[str, Any]]:
    return [e for e in trace["traceEvents"] if e["ph"] == ph]


def _tids(trace: dict[str, Any]) -> dict[str, int]:
    """Each request's row (its process's one thread), by request id."""
    return {
        e["args"]["name"].removeprefix("req "): e["tid"]
        for e in _by_phase(trace, "M")
        if e["name"] == "thread_name" and e["args"]["name"].startswith("req ")
    }


def test_one_process_per_request_named_req_id_in_arrival_order(demo_events: list[Event]) -> None:
    trace = chrome_trace(demo_events)
    validate_chrome_trace(trace)
    arrivals = [e.request_id for e in demo_events if isinstance(e, RequestAdded)]
    tids = _tids(trace)
    processes = {
        e["pid"]: e["args"]["name"] for e in _by_phase(trace, "M") if e["name"] == "process_name"
    }
    assert processes[PID] == "minivllm engine-0"
    # A request's process and its one thread share an id and the name "req ID".
    assert {processes[tid] for tid in tids.values()} == {f"req {rid}" for rid in arrivals}
    sort_index = {
        e["pid"]: e["args"]["sort_index"]
        for e in _by_phase(trace, "M")
        if e["name"] == "process_sort_index"
    }
    assert sorted(tids, key=lambda rid: sort_index[tids[rid]]) == arrivals
    assert sort_index[PID] < min(sort_index[t] for t in tids.values())
    # No thread 0, and the engine's steps on their own row.
    assert ENGINE_TID == PID != 0
    assert 0 not in {e["tid"] for e in trace["traceEvents"]}


def test_a_requests_counter_tracks_are_in_its_own_process(demo_events: list[Event]) -> None:
    trace = chrome_trace(demo_events)
    tids = _tids(trace)
    for rid, pid in tids.items():
        own = {c["name"] for c in _by_phase(trace, "C") if c["pid"] == pid}
        assert own == {f"req {rid}"}
    engine = {c["name"] for c in _by_phase(trace, "C") if c["pid"] == PID}
    assert engine == {"requests", "kv_cache"}


def test_slices_follow_each_request_status_sequence(demo_events: list[Event]) -> None:
    trace = chrome_trace(demo_events)
    origin = demo_events[0].ts_ns
    tids = _tids(trace)
    for rid, t in build_timelines(demo_events).items():
        row = [e for e in _by_phase(trace, "X") if e["tid"] == tids[rid]]
        unfinished = [s.name for s in t.status_sequence if not RequestStatus.is_finished(s)]
        assert [e["name"] for e in row] == unfinished
        assert row[0]["ts"] == (t.arrival_ns - origin) / 1000
        for a, b in itertools.pairwise(row):
            assert abs(a["ts"] + a["dur"] - b["ts"]) < 1e-6
        assert t.finished_ns is not None
        assert abs(row[-1]["ts"] + row[-1]["dur"] - (t.finished_ns - origin) / 1000) < 1e-6
    preempted = [e for e in _by_phase(trace, "X") if e["name"] == "PREEMPTED"]
    assert preempted, "the demo preempts a request"


def test_instant_at_finish_names_the_reason(demo_events: list[Event]) -> None:
    trace = chrome_trace(demo_events)
    origin = demo_events[0].ts_ns
    tids = _tids(trace)
    instants = {e["tid"]: e for e in _by_phase(trace, "i")}
    reasons = set()
    for rid, t in build_timelines(demo_events).items():
        mark = instants[tids[rid]]
        assert t.finished_ns is not None
        assert mark["ts"] == (t.finished_ns - origin) / 1000
        assert mark["name"] == f"finished: {t.finish_reason}"
        assert mark["args"]["finish_reason"] == t.finish_reason
        assert mark["args"]["num_output_tokens"] == t.num_output_tokens
        reasons.add(t.finish_reason)
    assert reasons == {"length", "abort"}


def _last_before(samples: list[dict[str, Any]], ts: float) -> dict[str, Any]:
    return [s for s in samples if s["ts"] <= ts][-1]


def test_counters_agree_with_the_engine_at_every_step_end(demo_events: list[Event]) -> None:
    trace = chrome_trace(demo_events)
    origin = demo_events[0].ts_ns
    counters = _by_phase(trace, "C")
    requests = [c for c in counters if c["name"] == "requests"]
    kv = [c["args"]["blocks_in_use"] for c in counters if c["name"] == "kv_cache"]
    ends = [e for e in demo_events if isinstance(e, StepFinished)]
    for end in ends:
        now = _last_before(requests, (end.ts_ns - origin) / 1000)["args"]
        assert (now["running"], now["waiting"]) == (end.num_running, end.num_waiting)
    assert kv == [e.num_used_blocks for e in ends]
    steps = [e for e in _by_phase(trace, "X") if e["tid"] == ENGINE_TID]
    assert [s["name"] for s in steps] == [f"step {e.step}" for e in ends]


def test_num_computed_tokens_track_per_request(demo_events: list[Event]) -> None:
    trace = chrome_trace(demo_events)
    for rid, t in build_timelines(demo_events).items():
        track = [c for c in _by_phase(trace, "C") if c["name"] == f"req {rid}"]
        values = [c["args"]["num_computed_tokens"] for c in track]
        assert values[0] == 0
        assert values[-1] == t.num_computed_tokens
        assert max(values) >= min(t.num_prompt_tokens, t.num_computed_tokens)
    r2 = [c["args"]["num_computed_tokens"] for c in _by_phase(trace, "C") if c["name"] == "req r2"]
    assert 0 in r2[1:], "r2 is preempted, so its track drops back to 0"


def test_a_log_cut_mid_run_ends_open_slices_at_its_last_event(demo_events: list[Event]) -> None:
    cut = demo_events[: len(demo_events) // 2]
    trace = chrome_trace(cut)
    validate_chrome_trace(trace)
    last_us = (cut[-1].ts_ns - cut[0].ts_ns) / 1000
    live = [t for t in build_timelines(cut).values() if not t.finished]
    assert live
    tids = _tids(trace)
    for t in live:
        row = [e for e in _by_phase(trace, "X") if e["tid"] == tids[t.request_id]]
        assert row[-1]["args"]["log_ended"] is True
        assert abs(row[-1]["ts"] + row[-1]["dur"] - last_us) < 1e-6
        assert not [e for e in _by_phase(trace, "i") if e["tid"] == tids[t.request_id]]


def test_write_chrome_trace_round_trips_as_json(demo_events: list[Event], tmp_path: Path) -> None:
    path = tmp_path / "trace.json"
    n = write_chrome_trace(demo_events, path)
    loaded = json.loads(path.read_text())
    assert len(loaded["traceEvents"]) == n
    assert loaded["otherData"]["clock_origin_ns"] == demo_events[0].ts_ns
    validate_chrome_trace(loaded)


def test_empty_log_is_refused() -> None:
    with pytest.raises(ValueError, match="empty"):
        chrome_trace([])


@settings(max_examples=25)
@given(scenarios())
def test_random_runs_give_valid_traces(scenario: Scenario) -> None:
    events = run_scenario_logged(scenario)
    trace = chrome_trace(events)
    validate_chrome_trace(trace)
    timelines = build_timelines(events)
    assert set(_tids(trace)) == set(timelines)
    finished = [t for t in timelines.values() if t.finished]
    assert len(_by_phase(trace, "i")) == len(finished)
