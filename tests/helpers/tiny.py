"""Shared helpers for the tiny-model tests: engines, workloads and the no-cache reference."""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from typing import Any

import attrs
import numpy as np

from minivllm import LLMEngine
from minivllm import SamplingParams
from minivllm.config import EngineConfig
from minivllm.model_executor.tiny import StepInputs
from minivllm.model_executor.tiny import TinyModelRunner
from minivllm.model_executor.tiny_model import TinyModel
from minivllm.model_executor.tiny_weights import TinyWeights
from minivllm.model_executor.tiny_weights import init_weights
from minivllm.tokenizer import ByteTokenizer

EOS = ByteTokenizer.eos_token_id


@cache
def tiny_weights() -> TinyWeights:
    """The weights of ``model="tiny"`` (made once per test session)."""
    return init_weights()


def make_runner(
    weights: TinyWeights | None = None, seed: int = 0, dtype: Any = np.float64, **config: Any
) -> TinyModelRunner:
    """A tiny runner sized for an engine built with the same ``config`` keywords.

    float64 by default: then "identical greedy outputs" tests the algorithm,
    not whether float32 rounding happens to break a near-tie the same way.
    """
    engine_config = EngineConfig(**config)
    return TinyModelRunner(
        weights or tiny_weights(),
        num_gpu_blocks=engine_config.num_gpu_blocks,
        block_size=engine_config.block_size,
        seed=seed,
        dtype=dtype,
    )


@attrs.frozen
class Job:
    """A request of a test workload: its prompt, sampling and the step it arrives at."""

    prompt: tuple[int, ...]
    params: SamplingParams
    arrival: int = 0


def run_jobs(engine: LLMEngine, jobs: Sequence[Job], max_steps: int = 5000) -> list[list[int]]:
    """Feed ``jobs`` at their arrival steps and step to the end; output token ids in job order."""
    pending = sorted(range(len(jobs)), key=lambda i: jobs[i].arrival)
    ids: dict[str, int] = {}
    outputs: dict[int, list[int]] = {}
    step = 0
    while pending or engine.has_unfinished_requests():
        while pending and jobs[pending[0]].arrival <= step:
            i = pending.pop(0)
            ids[engine.add_request(list(jobs[i].prompt), jobs[i].params)] = i
        for out in engine.step():
            if out.finished:
                outputs[ids[out.request_id]] = list(out.outputs[0].token_ids)
        step += 1
        assert step < max_steps, "the workload did not finish"
    return [outputs[i] for i in range(len(jobs))]


def reference_model(dtype: Any = np.float64) -> TinyModel:
    """The model that the reference pass runs."""
    return TinyModel(tiny_weights(), dtype)


def reference_greedy(
    model: TinyModel,
    prompt: Sequence[int],
    params: SamplingParams,
    max_model_len: int = 1024,
    guess: Sequence[int] = (),
) -> list[int]:
    """Greedy decoding with full forward passes over the whole sequence and no KV cache at all.

    ``guess`` (say, the engine's output) never changes the result, only its
    cost: one pass over prompt plus guess yields the next-token logits at every
    position, valid for as long as the decoding agrees with the guess.
    """
    tokens = list(prompt)
    out: list[int] = []
    guessed_logits = model.reference_logits([*prompt, *guess])
    assert params.max_tokens is not None
    while len(out) < params.max_tokens and len(tokens) < max_model_len:
        if len(out) <= len(guess) and out == list(guess[: len(out)]):
            logits = guessed_logits[len(tokens) - 1].copy()
        else:
            logits = model.reference_logits(tokens)[-1]
        if len(out) < params.min_tokens:
            banned = [*params.stop_token_ids] + ([] if params.ignore_eos else [EOS])
            logits[banned] = -np.inf
        token = int(np.argmax(logits))
        out.append(token)
        tokens.append(token)
        if len(out) >= params.min_tokens and (
            (token == EOS and not params.ignore_eos) or token in params.stop_token_ids
        ):
            break
    return out


class CheckingRunner(TinyModelRunner):
    """A tiny runner that checks every step's logits against the float64 no-cache reference pass."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.reference = reference_model()
        self.max_error = 0.0
        self.num_checked_tokens = 0

    def forward(self, inputs: StepInputs) -> np.ndarray:
        """Run the step as usual, then compare each request's rows with the reference."""
        hidden = super().forward(inputs)
        logits = self.model.compute_logits(hidden)
        row = 0
        for request in inputs.requests:
            end = request.num_computed_tokens
            n = end - int(inputs.positions[row])
            expected = self.reference.reference_logits(request.all_token_ids[:end])[end - n : end]
            error = float(np.abs(logits[row : row + n] - expected).max())
            self.max_error = max(self.max_error, error)
            self.num_checked_tokens += n
            row += n
        return hidden
