"""Helpers for engine tests: the reference runs' engine, snapshots, leak checks, draining."""

from __future__ import annotations

from typing import Any

import attrs

from minivllm import DummyModelRunner
from minivllm import LLMEngine
from minivllm.config import EngineConfig


def engine_config(
    seqs: int, budget: int, block_size: int, blocks: int, max_model_len: int, **options: Any
) -> EngineConfig:
    """An ``EngineConfig`` of these sizes (``budget``: tokens per step; ``blocks``: KV blocks).

    Any other field by its own name in ``options``, else at its default.
    """
    return EngineConfig(
        max_num_seqs=seqs,
        max_num_batched_tokens=budget,
        block_size=block_size,
        num_gpu_blocks=blocks,
        max_model_len=max_model_len,
        **options,
    )


def make_engine(config: EngineConfig | None = None, **kwargs: Any) -> LLMEngine:
    """An engine with the fixed-token runner of the reference runs (always samples 7).

    Configured by ``config`` if given, then by ``kwargs`` (``LLMEngine``'s).
    """
    if config is not None:
        kwargs = {**attrs.asdict(config), **kwargs}
    kwargs.setdefault("max_model_len", 256)
    model = kwargs.pop("model", DummyModelRunner(token_id=7))
    return LLMEngine(model, **kwargs)


def snapshot(engine: LLMEngine, request_id: str) -> tuple[str, int, int, int]:
    """(status, num_computed_tokens, num_tokens, num_output_tokens) of a live request."""
    r = engine.scheduler.requests[request_id]
    return (r.status.name, r.num_computed_tokens, r.num_tokens, r.num_output_tokens)


def assert_no_leak(engine: LLMEngine) -> None:
    """After everything finished: all usable blocks free, every ref count 0."""
    pool = engine.scheduler.kv_cache_manager.block_pool
    assert not engine.has_unfinished_requests()
    assert pool.get_num_free_blocks() == pool.num_gpu_blocks - 1
    assert all(b.ref_cnt == 0 for b in pool.blocks if not b.is_null)
    assert engine.scheduler.kv_cache_manager.req_to_blocks == {}


def run_to_end(engine: LLMEngine, max_steps: int = 10_000) -> dict[str, Any]:
    """Step until drained; return the final output of every request by id."""
    final = {}
    for _ in range(max_steps):
        if not engine.has_unfinished_requests():
            return final
        for out in engine.step():
            if out.finished:
                final[out.request_id] = out
    raise AssertionError("engine did not drain")
