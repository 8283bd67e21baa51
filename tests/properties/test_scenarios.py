"""The scheduler keeps every invariant on random workloads, and its log tells its whole state."""

from __future__ import annotations

from collections import Counter

from hypothesis import given, settings

from lifecycle_trace.testing import Scenario, check_scenario, scenarios

EXAMPLES = settings.default.max_examples * 10


@settings(max_examples=EXAMPLES)
@given(scenario=scenarios())
def test_invariants_hold_and_events_rebuild_state(
    scenario: Scenario, workloads: Counter[str]
) -> None:
    """No violation, and after every step the state rebuilt from events equals the engine's."""
    workloads["checked"] += 1
    check_scenario(scenario)
