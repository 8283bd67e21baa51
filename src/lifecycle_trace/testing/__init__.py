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
- :mod:`~lifecycle_trace.testing.differential`: :func:`assert_same_lifecycle`,
  one scenario on two engines (minivllm and the real vLLM scheduler, or a
  scheduler and a changed one), raising where a request's lifecycle parts;
- :mod:`~lifecycle_trace.testing.chrome_check`: a validator of Chrome Trace
  Event JSON (needs no hypothesis).

The names are imported on first use, so the validator loads without hypothesis.
"""

from __future__ import annotations

import importlib
from typing import Any

# Looked through in this order, so the validator's names load without hypothesis.
_MODULES = ("chrome_check", "scenario", "strategies", "machine", "differential")

__all__ = [
    "EOS_TOKEN_ID",
    "FILLER_TOKEN_ID",
    "STOP_TOKEN_CHOICES",
    "EngineStalled",
    "EngineStateMachine",
    "FakeClock",
    "InvalidTraceError",
    "InvariantViolationError",
    "LifecycleMismatch",
    "Scenario",
    "ScriptedSampler",
    "TraceProblem",
    "assert_no_violations",
    "assert_same_lifecycle",
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
    if name in __all__:
        for module_name in _MODULES:
            module = importlib.import_module(f"lifecycle_trace.testing.{module_name}")
            if name in module.__all__:
                return getattr(module, name)
    raise AttributeError(f"module 'lifecycle_trace.testing' has no attribute {name!r}")
