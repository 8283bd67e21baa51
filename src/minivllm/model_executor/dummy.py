"""A deterministic model runner that computes nothing: the scheduler's test bench."""

from __future__ import annotations

from collections.abc import Callable

from minivllm.core.sched.output import SchedulerOutput
from minivllm.model_executor.runner import ModelRunnerOutput, output_index
from minivllm.request import Request


class DummyModelRunner:
    """Samples without a model.

    By default it echoes the prompt (output token ``k`` is prompt token
    ``k mod num_prompt_tokens``), so generated text is readable; ``token_id``
    makes it sample that one token always (as the reference runs do, with 7);
    ``sample_fn(request)`` decides each token, e.g. to emit EOS at a chosen
    position: the output index being sampled is :func:`output_index`
    (under async scheduling the request's ``num_output_tokens`` lags behind
    it). A request in the middle of its prefill (``is_prefill_chunk``) gets ``[]``.
    """

    def __init__(
        self, token_id: int | None = None, sample_fn: Callable[[Request], int] | None = None
    ) -> None:
        if token_id is not None and sample_fn is not None:
            raise ValueError("pass token_id or sample_fn, not both")
        self.token_id = token_id
        self.sample_fn = sample_fn

    def _sample(self, request: Request) -> int:
        if self.sample_fn is not None:
            return self.sample_fn(request)
        prompt = request.prompt_token_ids
        return prompt[output_index(request) % len(prompt)]

    def execute_model(self, scheduler_output: SchedulerOutput) -> ModelRunnerOutput:
        """Sample for every scheduled request whose prefill is now complete."""
        req_ids: list[str] = []
        sampled: list[list[int]] = []
        token_id = self.token_id
        for group in (
            scheduler_output.scheduled_running_reqs,
            scheduler_output.scheduled_resumed_reqs,
            scheduler_output.scheduled_new_reqs,
        ):
            for request in group:
                req_ids.append(request.request_id)
                if request.is_prefill_chunk:
                    sampled.append([])
                elif token_id is not None:
                    sampled.append([token_id])
                else:
                    sampled.append([self._sample(request)])
        return ModelRunnerOutput(req_ids=req_ids, sampled_token_ids=sampled)
