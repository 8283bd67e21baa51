"""A pytest plugin that runs a whole test session with one mutant applied.

``MINIVLLM_MUTANT=<mutant name> pytest -p mutant_plugin tests/properties``
(with ``tests/mutation`` on ``PYTHONPATH``) installs the mutant before any
test runs and removes it at the end; ``run_mutants.py`` drives it.
"""

from __future__ import annotations

import os

import pytest
from policy_mutants import ALL_MUTANTS

MUTANT_ENV = "MINIVLLM_MUTANT"

_patch = pytest.MonkeyPatch()


def pytest_configure(config: pytest.Config) -> None:
    """Apply the mutant named by the environment, if any."""
    name = os.environ.get(MUTANT_ENV)
    if not name:
        return
    by_name = {m.name: m for m in ALL_MUTANTS}
    if name not in by_name:
        raise pytest.UsageError(f"{MUTANT_ENV}={name!r} names no mutant; known: {sorted(by_name)}")
    by_name[name].apply(_patch)


def pytest_unconfigure(config: pytest.Config) -> None:
    """Remove the mutant."""
    _patch.undo()


def pytest_report_header(config: pytest.Config) -> str | None:
    """Say which mutant the session runs under."""
    name = os.environ.get(MUTANT_ENV)
    return f"mutant: {name}" if name else None
