"""Finished requests in one pass: the whole log's views of each, handed out at its last step."""

from __future__ import annotations

from collections.abc import Iterator

from hypothesis import given
from hypothesis import settings

from helpers.export import run_scenario_logged
from lifecycle_trace.fold.finished import finished_requests
from lifecycle_trace.fold.intervals import status_intervals
from lifecycle_trace.fold.timeline import build_timelines
from lifecycle_trace.testing import Scenario
from lifecycle_trace.testing import scenarios
from minivllm.events import Event
from minivllm.events import StatusChanged
from minivllm.events import StepFinished
from minivllm.request import RequestStatus


def _check(events: list[Event]) -> None:
    timelines = build_timelines(events)
    intervals = status_intervals(events)
    pairs = list(finished_requests(events))
    finished = {rid for rid, t in timelines.items() if t.finished}
    assert sorted(t.request_id for t, _ in pairs) == sorted(finished)
    for t, r in pairs:
        assert t == timelines[t.request_id]
        assert r == intervals[t.request_id]


def test_the_demo(demo_events: list[Event]) -> None:
    _check(demo_events)
    _check(demo_events[: len(demo_events) // 2])


@settings(max_examples=25)
@given(scenarios())
def test_random_runs(scenario: Scenario) -> None:
    _check(run_scenario_logged(scenario))


def test_each_request_is_handed_out_by_the_end_of_its_finishing_step(
    demo_events: list[Event],
) -> None:
    finish_step = {
        e.request_id: e.step
        for e in demo_events
        if isinstance(e, StatusChanged) and RequestStatus.is_finished(e.new_status)
    }
    read: list[Event] = []

    def reading() -> Iterator[Event]:
        for e in demo_events:
            read.append(e)
            yield e

    for t, _ in finished_requests(reading()):
        last = read[-1]
        assert isinstance(last, StepFinished) and last.step == finish_step[t.request_id]
