"""Every mutant changes what the engine does on its witness workload (so it is a real bug)."""

from __future__ import annotations

import pytest
from policy_mutants import ALL_MUTANTS
from policy_mutants import Lines
from policy_mutants import Wrap
from policy_mutants import part_of
from witnesses import WITNESSES
from witnesses import behaviour

from helpers.mutants import Mutant


def test_every_mutant_has_a_witness_and_a_part() -> None:
    names = [m.name for m in ALL_MUTANTS]
    assert len(set(names)) == len(names), "mutant names must be unique"
    assert sorted(WITNESSES) == sorted(names)
    for name in names:
        assert part_of(name)


@pytest.mark.parametrize("mutant", ALL_MUTANTS, ids=[m.name for m in ALL_MUTANTS])
def test_mutant_changes_behaviour(
    mutant: Mutant | Lines | Wrap, monkeypatch: pytest.MonkeyPatch
) -> None:
    workload = WITNESSES[mutant.name]
    expected = behaviour(workload)
    assert expected and not isinstance(expected[-1], str), "the engine must drain the witness"
    mutant.apply(monkeypatch)
    assert behaviour(workload) != expected
