"""The model runner protocol (vLLM's ``execute_model`` and ``ModelRunnerOutput``)."""

from __future__ import annotations

from typing import Protocol
from typing import runtime_checkable

import attrs

from minivllm.core.sched.output import SchedulerOutput
from minivllm.request import Request


@attrs.frozen
class ModelRunnerOutput:
    """One sampled token per scheduled request whose prefill is complete; ``[]`` mid-prefill.

    ``req_id_to_index`` maps each id to its position in ``req_ids``.
    """

    req_ids: list[str]
    sampled_token_ids: list[list[int]]
    req_id_to_index: dict[str, int] = attrs.field(init=False, repr=False, eq=False)

    def __attrs_post_init__(self) -> None:
        index = dict(zip(self.req_ids, range(len(self.req_ids)), strict=True))
        object.__setattr__(self, "req_id_to_index", index)


@runtime_checkable
class ModelRunner(Protocol):
    """Anything that can run one scheduled batch.

    The engine calls ``execute_model`` right after ``schedule()`` for every
    batch, so each request's state is the batch's; under async scheduling the
    output is consumed one engine step later, when that batch is processed.
    """

    def execute_model(self, scheduler_output: SchedulerOutput) -> ModelRunnerOutput:
        """Compute the scheduled tokens; sample for each request not ``is_prefill_chunk``."""
        ...


def output_index(request: Request) -> int:
    """The output index of the token a runner samples for ``request`` in the batch just scheduled.

    ``num_computed_tokens`` already counts the batch, so this is
    ``num_output_tokens`` under synchronous scheduling and
    ``num_output_tokens + num_output_placeholders - 1`` under async scheduling.
    """
    return request.num_computed_tokens - request.num_prompt_tokens
