"""Hypothesis profiles for the whole suite, and the count of random workloads the run exercised.

``dev`` (the default) is randomised with a local example database; ``ci`` is
derandomised and database-free, so a CI failure reproduces exactly. CI sets
``CI=true``, which selects ``ci``; ``HYPOTHESIS_PROFILE`` overrides both.
"""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci",
    derandomize=True,
    database=None,
    deadline=None,
    max_examples=100,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "dev",
    deadline=None,
    max_examples=40,
    suppress_health_check=[HealthCheck.too_slow],
)
_default = "ci" if os.environ.get("CI", "").lower() == "true" else "dev"
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", _default))


class WorkloadCounter:
    """Counts the random workloads the property suite runs (reported at the end of the session)."""

    def __init__(self) -> None:
        self.count = 0

    def add(self) -> None:
        """Count one more workload."""
        self.count += 1


_COUNTER = WorkloadCounter()


@pytest.fixture(scope="session")
def workloads() -> WorkloadCounter:
    """The session's workload counter (session-scoped, so hypothesis tests may use it)."""
    return _COUNTER


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Report how many random workloads the property suite ran."""
    if _COUNTER.count:
        terminalreporter.write_line(
            f"property suite: {_COUNTER.count} random workloads "
            f"(hypothesis profile {settings.get_current_profile_name()})"
        )
