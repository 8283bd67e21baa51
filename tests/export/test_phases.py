"""Status intervals and vLLM's phases: they tile each request's life and match vLLM's intervals."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import settings

from helpers.engine import engine_config
from helpers.engine import make_engine
from helpers.export import run_scenario_logged
from lifecycle_trace.fold.intervals import status_intervals
from lifecycle_trace.fold.phases import PHASE_NAMES
from lifecycle_trace.fold.phases import request_phases
from lifecycle_trace.fold.timeline import build_timelines
from lifecycle_trace.log import EventLog
from lifecycle_trace.testing import Scenario
from lifecycle_trace.testing import scenarios
from minivllm import SamplingParams
from minivllm.events import Event
from minivllm.events import StatusChanged
from minivllm.request import RequestStatus


def _check(events: list[Event]) -> None:
    timelines = build_timelines(events)
    intervals = status_intervals(events)
    assert list(intervals) == list(timelines)
    for rid, r in intervals.items():
        t = timelines[rid]
        unfinished = [s for s in t.status_sequence if not RequestStatus.is_finished(s)]
        assert [iv.status for iv in r.intervals] == unfinished
        phases = request_phases(r)
        assert {p.name for p in phases} <= set(PHASE_NAMES)
        assert phases[0].start_ns == r.arrival_ns == t.arrival_ns
        assert phases[-1].end_ns == r.end_ns
        for a, b in itertools.pairwise(phases):
            assert a.end_ns == b.start_ns and a.first_step <= a.last_step <= b.first_step
        queued = sum(p.duration_ns for p in phases if p.name == "queued")
        # vLLM's prefill interval runs from first scheduled to first token, so it
        # includes any preemption in between.
        token = r.first_token_ns
        prefill = sum(
            p.duration_ns
            for p in phases
            if p.name != "queued" and (token is None or p.end_ns <= token)
        )
        if t.queue_time_ns is not None:
            assert queued == t.queue_time_ns
        if token is not None:  # a phase ends at the first token, even a preempted one
            assert any(p.end_ns == token for p in phases)
        if t.prefill_time_ns is not None:
            assert prefill == t.prefill_time_ns
        if t.finished:
            assert r.finish is not None and r.end_ns == t.finished_ns
            assert r.finish.reason == t.finish_reason
        else:
            assert r.finish is None and r.intervals[-1].open_end


def test_demo_phases(demo_events: list[Event]) -> None:
    _check(demo_events)
    r2 = request_phases(status_intervals(demo_events)["r2"])
    assert [p.name for p in r2] == ["queued", "prefill", "decode", "preempted", "decode"]


def test_a_first_token_landing_while_preempted_splits_the_preempted_phase() -> None:
    # Async: "b" is preempted while the batch that finishes its prompt is in
    # flight; that batch's token still arrives, during the preemption.
    engine = make_engine(engine_config(2, 4, 4, 4, 12, async_scheduling=True), model="dummy")
    log = EventLog()
    engine.bus.subscribe(log)
    engine.add_request("a", [1], SamplingParams(max_tokens=11, ignore_eos=True))
    engine.add_request("b", list(range(1, 9)), SamplingParams(max_tokens=2, ignore_eos=True))
    while engine.has_unfinished_requests():
        engine.step()
    events = list(log)
    _check(events)
    b = status_intervals(events)["b"]
    names = [p.name for p in request_phases(b)]
    assert names[:4] == ["queued", "prefill", "preempted", "preempted"], names
    assert request_phases(b)[2].end_ns == b.first_token_ns


def test_a_cut_log_leaves_live_requests_open(demo_events: list[Event]) -> None:
    _check(demo_events[: len(demo_events) // 3])


def test_a_status_change_for_an_unknown_request_is_refused(demo_events: list[Event]) -> None:
    first_change = next(i for i, e in enumerate(demo_events) if isinstance(e, StatusChanged))
    with pytest.raises(ValueError, match="never added"):
        status_intervals(demo_events[first_change:])


@settings(max_examples=25)
@given(scenarios())
def test_random_runs(scenario: Scenario) -> None:
    _check(run_scenario_logged(scenario))
