"""Testing helpers for people who change the scheduler: strategies, a runner, a state machine.

Everything here is built on hypothesis and the invariant checker:

- :mod:`~lifecycle_trace.testing.strategies`: strategies for the engine's
  inputs (:func:`engine_configs`, :func:`prompts`, :func:`text_prompts`,
  :func:`sampling_params`, :func:`token_scripts`) and whole
  :func:`scenarios`;
- :mod:`~lifecycle_trace.testing.scenario`: :class:`Scenario`,
  :func:`run_scenario` and :func:`check_scenario`, which drive an engine
  through a scenario with the checker live and compare the state rebuilt from
  events with the engine's own state after every step;
- :mod:`~lifecycle_trace.testing.machine`: :class:`EngineStateMachine`, a
  ``RuleBasedStateMachine`` (add, abort, step; invariants after every rule) to
  subclass for your own engine or scheduler;
- :mod:`~lifecycle_trace.testing.chrome_check`: a validator of Chrome Trace
  Event JSON (needs no hypothesis).

The names are imported on first use, so the validator loads without hypothesis.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from lifecycle_trace.testing.chrome_check import (
        InvalidTraceError,
        TraceProblem,
        trace_problems,
        validate_chrome_trace,
    )
    from lifecycle_trace.testing.machine import EngineStateMachine
    from lifecycle_trace.testing.scenario import (
        EOS_TOKEN_ID,
        FILLER_TOKEN_ID,
        EngineStalled,
        FakeClock,
        InvariantViolationError,
        Scenario,
        ScriptedSampler,
        assert_no_violations,
        check_scenario,
        run_scenario,
        state_mismatches,
        step_limit,
    )
    from lifecycle_trace.testing.strategies import (
        STOP_TOKEN_CHOICES,
        engine_configs,
        prompts,
        sampling_params,
        scenarios,
        text_prompts,
        token_scripts,
    )

_HOMES = {
    "chrome_check": (
        "InvalidTraceError",
        "TraceProblem",
        "trace_problems",
        "validate_chrome_trace",
    ),
    "machine": ("EngineStateMachine",),
    "scenario": (
        "EOS_TOKEN_ID",
        "FILLER_TOKEN_ID",
        "EngineStalled",
        "FakeClock",
        "InvariantViolationError",
        "Scenario",
        "ScriptedSampler",
        "assert_no_violations",
        "check_scenario",
        "run_scenario",
        "state_mismatches",
        "step_limit",
    ),
    "strategies": (
        "STOP_TOKEN_CHOICES",
        "engine_configs",
        "prompts",
        "sampling_params",
        "scenarios",
        "text_prompts",
        "token_scripts",
    ),
}
_HOME_OF = {name: module for module, names in _HOMES.items() for name in names}

__all__ = [
    "EOS_TOKEN_ID",
    "FILLER_TOKEN_ID",
    "STOP_TOKEN_CHOICES",
    "EngineStalled",
    "EngineStateMachine",
    "FakeClock",
    "InvalidTraceError",
    "InvariantViolationError",
    "Scenario",
    "ScriptedSampler",
    "TraceProblem",
    "assert_no_violations",
    "check_scenario",
    "engine_configs",
    "prompts",
    "run_scenario",
    "sampling_params",
    "scenarios",
    "state_mismatches",
    "step_limit",
    "text_prompts",
    "token_scripts",
    "trace_problems",
    "validate_chrome_trace",
]


def __getattr__(name: str) -> Any:
    module = _HOME_OF.get(name)
    if module is None:
        raise AttributeError(f"module 'lifecycle_trace.testing' has no attribute {name!r}")
    return getattr(importlib.import_module(f"lifecycle_trace.testing.{module}"), name)
