"""Testing helpers for people who change the scheduler: strategies, a runner, a state machine.

Everything here is built on hypothesis and the invariant checker:

- :mod:`~lifecycle_trace.testing.strategies`: strategies for the engine's
  inputs (:func:`engine_configs`, :func:`prompts`, :func:`text_prompts`,
  :func:`sampling_params`, :func:`token_scripts`) and whole
  :func:`scenarios`;
- :mod:`~lifecycle_trace.testing.reference`: :class:`ReferenceScheduler`, an
  executable specification of vLLM 0.22.1's scheduling policy (no code shared
  with the engine), and :mod:`~lifecycle_trace.testing.lockstep`:
  :class:`Lockstep`, which feeds an engine and the reference the same inputs
  and names every difference by a rule of :data:`REFERENCE_RULES`;
- :mod:`~lifecycle_trace.testing.scenario`: :class:`Scenario`,
  :func:`run_scenario` and :func:`check_scenario`, which drive an engine
  through a scenario with the checker live, compare it with the reference
  after every step, and compare the state rebuilt from events with the
  engine's own state;
- :mod:`~lifecycle_trace.testing.machine`: :class:`EngineStateMachine`, a
  ``RuleBasedStateMachine`` (add, abort, step; the reference as the model;
  invariants after every rule) to subclass for your own engine or scheduler;
- :mod:`~lifecycle_trace.testing.differential`: :func:`assert_same_lifecycle`,
  one scenario on two engines (minivllm and the real vLLM scheduler, or a
  scheduler and a changed one), raising where a request's lifecycle parts;
- :mod:`~lifecycle_trace.testing.chrome_check`: a validator of Chrome Trace
  Event JSON (needs no hypothesis).

The names are imported on first use, so the validator, the reference and
:class:`Lockstep` load without hypothesis.
"""

from __future__ import annotations

import importlib
from typing import Any

# Looked through in this order, so the validator's names load without hypothesis.
_MODULES = (
    "chrome_check",
    "reference",
    "lockstep",
    "scenario",
    "strategies",
    "machine",
    "differential",
)

__all__ = [
    "EOS_TOKEN_ID",
    "FILLER_TOKEN_ID",
    "FOCUSES",
    "REFERENCE_RULES",
    "STOP_STRING_CHOICES",
    "STOP_TOKEN_CHOICES",
    "EngineStalled",
    "EngineStateMachine",
    "FakeClock",
    "InvalidTraceError",
    "InvariantViolationError",
    "LifecycleMismatch",
    "Lockstep",
    "ReferenceFactory",
    "ReferenceScheduler",
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
