"""Proof that the property suite can fail: each injected scheduler bug is caught and shrunk.

For every mutant the scenario property (strategies + checker + state
rebuilt from events) must fail; the shrunk counterexample and the
violations it triggers are printed, so a CI log shows the story of each bug.
The engine state machine must fail on every mutant too (searched without
shrinking, to keep the run short; its first violation is printed).
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.stateful import run_state_machine_as_test

from helpers.mutants import MUTANTS, Mutant
from lifecycle_trace.testing import EngineStateMachine, Scenario, check_scenario, scenarios

SEARCH = settings(
    max_examples=300,
    derandomize=True,
    database=None,
    deadline=None,
    report_multiple_bugs=False,
    phases=[Phase.generate, Phase.shrink],
    suppress_health_check=list(HealthCheck),
)


def counterexample() -> str | None:
    """Run the scenario property; the shrunk failure as text, or None if it held."""

    @SEARCH
    @given(scenario=scenarios())
    def property_holds(scenario: Scenario) -> None:
        check_scenario(scenario)

    try:
        property_holds()
    except Exception as failure:  # a violation, or the engine crashing on its own state
        notes = "\n".join(getattr(failure, "__notes__", ()))
        return f"{notes}\n{type(failure).__name__}: {failure}"
    return None


def test_the_unmutated_engine_passes_the_same_search() -> None:
    assert counterexample() is None


@pytest.mark.parametrize("mutant", MUTANTS, ids=[m.name for m in MUTANTS])
def test_property_suite_catches(
    mutant: Mutant, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    mutant.apply(monkeypatch)
    found = counterexample()
    assert found is not None, f"the property suite missed the bug: {mutant.name}"
    with capsys.disabled():
        print(f"\n--- mutant caught: {mutant.name} ---\n{found}")


MACHINE_SEARCH = settings(SEARCH, max_examples=400, stateful_step_count=30, phases=[Phase.generate])


@pytest.mark.parametrize("mutant", MUTANTS, ids=[m.name for m in MUTANTS])
def test_state_machine_catches(
    mutant: Mutant, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    mutant.apply(monkeypatch)
    with pytest.raises(Exception) as failure:  # a violation, or the engine crashing
        run_state_machine_as_test(EngineStateMachine, settings=MACHINE_SEARCH)
    with capsys.disabled():
        print(f"\n--- state machine caught: {mutant.name} ---\n{failure.typename}: {failure.value}")
