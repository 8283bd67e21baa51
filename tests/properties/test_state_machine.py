"""Random add / abort / step sequences, with every invariant checked after every operation."""

from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import settings

from lifecycle_trace.testing import EngineStateMachine


class CountedMachine(EngineStateMachine):
    """The shipped machine, counting its runs for the session summary."""

    counter: Counter[str] | None = None

    def teardown(self) -> None:
        super().teardown()
        if self.counter is not None:
            self.counter["state-machine"] += 1


@pytest.fixture(autouse=True)
def _count(workloads: Counter[str]) -> None:
    CountedMachine.counter = workloads


TestEngineStateMachine = CountedMachine.TestCase
TestEngineStateMachine.settings = settings(
    max_examples=settings.default.max_examples * 4, stateful_step_count=30
)
