"""A deterministic model runner that computes nothing: the scheduler's test bench."""

from __future__ import annotations

from collections.abc import Callable

from minivllm.core.sched.output import SchedulerOutput
from minivllm.model_executor.runner import ModelRunnerOutput
from minivllm.model_executor.runner import output_index
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
        """Sample for every scheduled request that is not in the middle of its prefill."""
        requests = scheduler_output.scheduled_reqs
        token_id = self.token_id
        if token_id is not None:
            sampled = [[] if r.is_prefill_chunk else [token_id] for r in requests]
        else:
            sample = self._sample
            sampled = [[] if r.is_prefill_chunk else [sample(r)] for r in requests]
        return ModelRunnerOutput([r.request_id for r in requests], sampled)
