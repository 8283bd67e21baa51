"""Hypothesis profiles for the whole suite, and the count of random workloads the run exercised.

``dev`` (the default) is randomised with a local example database; ``ci`` is
derandomised and database-free, so a CI failure reproduces exactly. CI sets
``CI=true``, which selects ``ci``; ``HYPOTHESIS_PROFILE`` overrides both.
``ci-no-shrink`` generates exactly the examples of ``ci`` but reports a failure
as first found (the mutation runner uses it: a catch does not depend on shrinking).
"""

from __future__ import annotations

import os
from collections import Counter

import pytest
from hypothesis import HealthCheck
from hypothesis import Phase
from hypothesis import settings

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
    "ci-no-shrink",
    settings.get_profile("ci"),
    phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.target],
)
settings.register_profile(
    "dev",
    deadline=None,
    max_examples=40,
    suppress_health_check=[HealthCheck.too_slow],
)
_default = "ci" if os.environ.get("CI", "").lower() == "true" else "dev"
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", _default))


_WORKLOADS: Counter[str] = Counter()


@pytest.fixture(scope="session")
def workloads() -> Counter[str]:
    """Random workloads run so far, by kind (session-scoped, so hypothesis tests may use it)."""
    return _WORKLOADS


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Report how many random workloads the property suite ran."""
    total = sum(_WORKLOADS.values())
    if total:
        kinds = ", ".join(f"{kind} {n}" for kind, n in sorted(_WORKLOADS.items()))
        terminalreporter.write_line(
            f"property suite: {total} random workloads ({kinds}; "
            f"hypothesis profile {settings.get_current_profile_name()})"
        )
