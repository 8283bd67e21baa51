"""The whole mutable state of an engine as one comparable value (for all-or-nothing tests)."""

from __future__ import annotations

from typing import Any

from minivllm import LLMEngine
from minivllm.request import Request


def request_state(r: Request) -> tuple[Any, ...]:
    """Every field of a request a step can change, token lists and block hashes included."""
    return (
        r.request_id,
        r.status.name,
        r.num_computed_tokens,
        r.num_tokens,
        r.num_output_placeholders,
        r.num_cached_tokens,
        r.is_prefill_chunk,
        r.num_preemptions,
        r.stop_reason,
        r.max_tokens,
        tuple(r._output_token_ids),
        tuple(r._all_token_ids),
        tuple(r.block_hashes),
    )


def engine_state(engine: LLMEngine) -> dict[str, Any]:
    """Queues (in order), requests, block tables, the block pool, the prefix cache, counters."""
    sched = engine.scheduler
    kv = sched.kv_cache_manager
    pool = kv.block_pool
    core = engine.engine_core
    batch_queue = core.batch_queue or ()
    return {
        "requests": [(rid, request_state(r)) for rid, r in sched.requests.items()],
        "running": [r.request_id for r in sched.running],
        "waiting": [request_state(r) for r in sched.waiting],
        "finished_req_ids": sorted(sched.finished_req_ids),
        "req_to_blocks": [(rid, [b.block_id for b in bs]) for rid, bs in kv.req_to_blocks.items()],
        "num_cached_block": list(kv.num_cached_block.items()),
        "blocks": [(b.block_id, b.ref_cnt, b.block_hash) for b in pool.blocks],
        "free_queue": [b.block_id for b in pool.free_block_queue.get_all_free_blocks()],
        "num_free": pool.free_block_queue.num_free_blocks,
        "cached": sorted(
            (h, list(blocks)) for h, blocks in pool.cached_block_hash_to_block.items()
        ),
        "batch_queue": [
            (id(out), sorted(so.num_scheduled_tokens.items())) for out, so in batch_queue
        ],
        "step_index": engine.step_index,
        "bus_step": engine.bus.step,
        "num_emitted": engine.bus.num_emitted if hasattr(engine.bus, "num_emitted") else None,
    }
