"""The scheduler keeps every invariant on random workloads, and its log tells its whole state."""

from __future__ import annotations

from collections import Counter

from hypothesis import example
from hypothesis import given
from hypothesis import settings

from helpers.corners import CORNERS
from lifecycle_trace.testing import Scenario
from lifecycle_trace.testing import check_scenario
from lifecycle_trace.testing import scenarios

EXAMPLES = settings.default.max_examples * 10


@settings(max_examples=EXAMPLES)
@given(scenario=scenarios())
def test_invariants_hold_and_events_rebuild_state(
    scenario: Scenario, workloads: Counter[str]
) -> None:
    """The engine does what the reference does, no rule breaks, events rebuild its state."""
    workloads["checked"] += 1
    check_scenario(scenario)


# The corners random search reaches rarely run first, as explicit examples.
for _corner in CORNERS.values():
    test_invariants_hold_and_events_rebuild_state = example(scenario=_corner)(
        test_invariants_hold_and_events_rebuild_state
    )
