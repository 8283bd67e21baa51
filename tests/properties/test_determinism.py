"""The same workload on the same fake clock gives the same log, event for event."""

from __future__ import annotations

from collections import Counter

from hypothesis import given
from hypothesis import settings

from lifecycle_trace.testing import FakeClock
from lifecycle_trace.testing import Scenario
from lifecycle_trace.testing import run_scenario
from lifecycle_trace.testing import scenarios
from minivllm.events import Event
from minivllm.events import event_to_dict

EXAMPLES = settings.default.max_examples * 3


def _log(scenario: Scenario) -> list[dict[str, object]]:
    events: list[Event] = []
    run_scenario(scenario, (events.append,), clock=FakeClock())
    return [event_to_dict(e) for e in events]


@settings(max_examples=EXAMPLES)
@given(scenario=scenarios())
def test_same_workload_same_log(scenario: Scenario, workloads: Counter[str]) -> None:
    """Two runs of one scenario produce identical serialised logs."""
    workloads["replayed"] += 1
    first = _log(scenario)
    assert first, "a run always logs at least its configuration"
    assert _log(scenario) == first
