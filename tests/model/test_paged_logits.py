"""The paged, batched, chunked forward pass computes what a plain full-sequence pass computes."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from helpers.tiny import CheckingRunner
from helpers.tiny import Job
from helpers.tiny import run_jobs
from helpers.tiny import tiny_weights
from minivllm import LLMEngine
from minivllm import SamplingParams

TOLERANCE = 1e-9  # float64 throughout; only summation order differs
FLOAT32_TOLERANCE = 1e-4


def _prompt(seed: int, length: int) -> tuple[int, ...]:
    return tuple(int(t) for t in np.random.default_rng(seed).integers(0, 256, length))


def _checked_run(jobs: list[Job], dtype: Any = np.float64, **config: Any) -> CheckingRunner:
    runner = CheckingRunner(
        tiny_weights(),
        num_gpu_blocks=config["num_gpu_blocks"],
        block_size=config["block_size"],
        dtype=dtype,
    )
    engine = LLMEngine(runner, **config)
    run_jobs(engine, jobs)
    return runner


@pytest.mark.parametrize(
    ("budget", "threshold"), [(2048, 0), (16, 0), (8, 3), (5, 0)], ids=["whole", "16", "thr3", "5"]
)
def test_chunked_batched_logits_match_full_pass(budget: int, threshold: int) -> None:
    params = SamplingParams(temperature=0, max_tokens=6, ignore_eos=True)
    jobs = [Job(_prompt(i, 10 + 7 * i), params, arrival=i) for i in range(4)]
    runner = _checked_run(
        jobs,
        max_num_seqs=4,
        max_num_batched_tokens=budget,
        long_prefill_token_threshold=threshold,
        block_size=4,
        num_gpu_blocks=64,
        max_model_len=64,
    )
    assert runner.num_checked_tokens == sum(len(j.prompt) + 5 for j in jobs)
    assert runner.max_error < TOLERANCE


def test_float32_logits_match_within_float32_rounding() -> None:
    params = SamplingParams(temperature=0, max_tokens=6, ignore_eos=True)
    jobs = [Job(_prompt(i, 10 + 7 * i), params, arrival=i) for i in range(4)]
    runner = _checked_run(
        jobs,
        np.float32,
        max_num_seqs=4,
        max_num_batched_tokens=8,
        long_prefill_token_threshold=3,
        block_size=4,
        num_gpu_blocks=64,
        max_model_len=64,
    )
    assert runner.model.dtype is np.float32
    assert runner.max_error < FLOAT32_TOLERANCE


def test_logits_match_after_preemption_and_recompute() -> None:
    params = SamplingParams(temperature=0, max_tokens=12, ignore_eos=True)
    jobs = [Job(_prompt(10 + i, 14), params) for i in range(4)]
    runner = _checked_run(
        jobs,
        max_num_seqs=4,
        block_size=4,
        num_gpu_blocks=10,
        max_model_len=32,
        max_num_batched_tokens=64,
    )
    # Recomputation means more tokens went through the model than the requests hold.
    assert runner.num_checked_tokens > sum(len(j.prompt) + 11 for j in jobs)
    assert runner.max_error < TOLERANCE


def test_logits_match_when_reading_blocks_another_request_wrote() -> None:
    shared = _prompt(20, 16)
    params = SamplingParams(temperature=0, max_tokens=4, ignore_eos=True)
    jobs = [
        Job((*shared, 1, 2, 3), params, arrival=0),
        Job((*shared, 4, 5), params, arrival=3),
        Job((*shared, 6), params, arrival=3),
    ]
    runner = _checked_run(
        jobs, enable_prefix_caching=True, block_size=4, num_gpu_blocks=64, max_model_len=64
    )
    # The later requests compute only their suffix: the 16 shared tokens came from the cache.
    assert runner.num_checked_tokens == sum(len(j.prompt) + 3 for j in jobs) - 2 * 16
    assert runner.max_error < TOLERANCE


def test_decode_reads_keys_and_values_from_the_cache() -> None:
    runner = CheckingRunner(tiny_weights(), num_gpu_blocks=16, block_size=4, dtype=np.float64)
    engine = LLMEngine(runner, block_size=4, num_gpu_blocks=16, max_model_len=32)
    engine.add_request(list(_prompt(30, 9)), SamplingParams(max_tokens=3, ignore_eos=True))
    engine.step()
    assert runner.max_error < TOLERANCE
    # Overwrite the prompt's keys: if decode reads them, it must now disagree with the reference.
    cache = runner.kv_cache
    cache.key[...] = np.random.default_rng(0).standard_normal(cache.key.shape)
    engine.step()
    assert runner.max_error > 1e-3
