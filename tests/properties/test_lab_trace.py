"""The lab's polling trace and the trace derived from events agree on random workloads."""

from __future__ import annotations

from collections import Counter

from hypothesis import given
from hypothesis import settings

from lifecycle_trace.lab import trace_from_events
from lifecycle_trace.lab import trace_workload
from lifecycle_trace.testing import Scenario
from lifecycle_trace.testing import scenarios
from minivllm.engine.llm_engine import LLMEngine
from minivllm.events import Event

EXAMPLES = settings.default.max_examples * 4


@settings(max_examples=EXAMPLES)
@given(scenario=scenarios())
def test_polling_and_event_traces_agree(scenario: Scenario, workloads: Counter[str]) -> None:
    """``trace_workload`` (polling the scheduler) equals ``trace_from_events`` (events only)."""
    workloads["lab-traced"] += 1
    events: list[Event] = []

    def subscribe(engine: LLMEngine) -> None:
        engine.bus.subscribe(events.append)

    polled = trace_workload(scenario.workload, scenario.model(), on_engine=subscribe)
    assert trace_from_events(events) == polled
