"""The model runner protocol (vLLM's ``execute_model`` and ``ModelRunnerOutput``)."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import attrs

from minivllm.core.sched.output import SchedulerOutput


@attrs.frozen
class ModelRunnerOutput:
    """One sampled token per scheduled request whose prefill is complete; ``[]`` mid-prefill."""

    req_ids: list[str]
    sampled_token_ids: list[list[int]]


@runtime_checkable
class ModelRunner(Protocol):
    """Anything that can run one scheduled step."""

    def execute_model(self, scheduler_output: SchedulerOutput) -> ModelRunnerOutput:
        """Compute the scheduled tokens and sample for requests whose prefill is complete."""
        ...
