"""Seeded sampling is reproducible and batch-independent; min_tokens masks stop tokens."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from helpers.tiny import EOS
from helpers.tiny import Job
from helpers.tiny import make_runner
from helpers.tiny import run_jobs
from helpers.tiny import tiny_weights
from minivllm import LLMEngine
from minivllm import SamplingParams
from minivllm.events import StepFinished
from minivllm.model_executor.tiny_model import TinyModel

SEEDED = SamplingParams(temperature=0.9, top_k=100, top_p=0.95, seed=1234, max_tokens=12)
AMPLE: dict[str, Any] = {}
CRAMPED: dict[str, Any] = {
    "block_size": 2,
    "num_gpu_blocks": 26,
    "max_model_len": 48,
    "max_num_batched_tokens": 7,
    "long_prefill_token_threshold": 3,
    "max_num_seqs": 4,
    "enable_prefix_caching": True,
}


def _run(jobs: list[Job], config: dict[str, Any], seed: int = 0) -> list[list[int]]:
    return run_jobs(LLMEngine(make_runner(seed=seed, **config), seed=seed, **config), jobs)


def _crowd(n: int) -> list[Job]:
    params = SamplingParams(temperature=1.0, max_tokens=10, ignore_eos=True)
    return [Job(tuple(range(30 + i, 45 + 2 * i)), params, arrival=i % 3) for i in range(n)]


@pytest.mark.parametrize("async_scheduling", [False, True])
def test_seeded_request_ignores_batch_chunking_and_preemption(async_scheduling: bool) -> None:
    target = Job(tuple(b"the same prompt"), SEEDED, arrival=1)
    alone = _run([target], AMPLE)[0]
    config = {**CRAMPED, "async_scheduling": async_scheduling}
    engine = LLMEngine(make_runner(**config), **config)
    preempted: list[str] = []
    engine.bus.subscribe(lambda event: preempted.extend(event.preempted_req_ids), StepFinished)
    crowded = run_jobs(engine, [*_crowd(5), target, *_crowd(2)])[5]
    assert preempted, "the cramped engine was meant to preempt"
    assert crowded == alone
    assert len(alone) > 1


def test_same_seed_same_tokens_in_one_batch() -> None:
    prompt = tuple(b"twins")
    other = SamplingParams(temperature=0.9, top_k=100, top_p=0.95, seed=99, max_tokens=12)
    jobs = [Job(prompt, SEEDED), Job(prompt, SEEDED), Job(prompt, other)]
    first, second, third = _run(jobs, AMPLE)
    assert first == second
    assert third != first


def test_unseeded_requests_follow_the_engine_seed() -> None:
    params = SamplingParams(temperature=1.0, max_tokens=12, ignore_eos=True)
    jobs = [Job(tuple(b"hello"), params), Job(tuple(b"hello"), params)]
    run_a, run_b, other_seed = _run(jobs, AMPLE), _run(jobs, AMPLE), _run(jobs, AMPLE, seed=7)
    assert run_a == run_b
    # Each request has its own generator, so equal prompts still draw differently.
    assert run_a[0] != run_a[1]
    assert other_seed != run_a


class _Favouring(TinyModel):
    """The tiny model with a strong bias towards one token."""

    def __init__(self, token: int) -> None:
        super().__init__(tiny_weights(), np.float64)
        self.token = token

    def compute_logits(self, hidden_states: np.ndarray) -> np.ndarray:
        logits = super().compute_logits(hidden_states)
        logits[:, self.token] += 100.0
        return logits


def _engine_favouring(token: int) -> LLMEngine:
    runner = make_runner()
    runner.model = _Favouring(token)
    return LLMEngine(runner)


@pytest.mark.parametrize("temperature", [0.0, 1.0])
def test_min_tokens_masks_eos_until_reached(temperature: float) -> None:
    eager = SamplingParams(temperature=temperature, seed=0)
    patient = SamplingParams(temperature=temperature, seed=0, min_tokens=5, max_tokens=20)
    without_min, with_min = run_jobs(
        _engine_favouring(EOS), [Job((1, 2, 3), eager), Job((1, 2, 3), patient)]
    )
    assert without_min == [EOS]
    assert len(with_min) == 6
    assert EOS not in with_min[:5]
    assert with_min[5] == EOS


def test_min_tokens_masks_stop_token_ids_until_reached() -> None:
    engine = _engine_favouring(65)
    params = SamplingParams(temperature=0, min_tokens=3, max_tokens=20, stop_token_ids=[65])
    engine.add_request([1, 2, 3], params)
    finished = []
    while engine.has_unfinished_requests():
        finished.extend(o for o in engine.step() if o.finished)
    completion = finished[0].outputs[0]
    assert len(completion.token_ids) == 4
    assert 65 not in completion.token_ids[:3]
    assert completion.token_ids[3] == 65
    assert (completion.finish_reason, completion.stop_reason) == ("stop", 65)
