"""Prefix caching: chained hashes of full blocks, hits on freed blocks, eviction order."""

from __future__ import annotations

from helpers.engine import assert_no_leak
from helpers.engine import make_engine
from helpers.engine import run_to_end
from minivllm import SamplingParams
from minivllm.events import StepFinished


def test_second_request_hits_the_shared_prefix() -> None:
    engine = make_engine(enable_prefix_caching=True, block_size=4)
    shared = [9] * 12
    engine.add_request([*shared, 1, 2], SamplingParams(max_tokens=2), request_id="a")
    run_to_end(engine)
    engine.add_request([*shared, 3], SamplingParams(max_tokens=2), request_id="b")
    seen: list[StepFinished] = []
    engine.bus.subscribe(seen.append, StepFinished)
    engine.step()
    b = engine.scheduler.requests["b"]
    assert b.num_cached_tokens == 12
    assert seen[0].num_scheduled_tokens == {"b": 1}
    run_to_end(engine)
    assert_no_leak(engine)


def test_never_the_whole_prompt_is_a_hit() -> None:
    engine = make_engine(enable_prefix_caching=True, block_size=4)
    prompt = [9] * 8
    engine.add_request(prompt, SamplingParams(max_tokens=1), request_id="a")
    run_to_end(engine)
    engine.add_request(prompt, SamplingParams(max_tokens=1), request_id="b")
    b = engine.scheduler.requests["b"]
    seen: list[StepFinished] = []
    engine.bus.subscribe(seen.append, StepFinished)
    engine.step()
    # Both blocks are cached, but the last token must be computed for its logits,
    # and hits are whole blocks: only the first block is served from the cache.
    assert b.num_cached_tokens == 4
    assert seen[0].num_scheduled_tokens == {"b": 4}


def test_hit_counts_tokens_in_the_resume_after_preemption() -> None:
    # The preempted request's freed blocks keep their hashes; on resume it hits them.
    engine = make_engine(
        enable_prefix_caching=True, block_size=4, num_gpu_blocks=5, max_model_len=16, max_num_seqs=4
    )
    engine.add_request([1] * 6, SamplingParams(max_tokens=6), request_id="a")
    engine.add_request([2] * 6, SamplingParams(max_tokens=6), request_id="b")
    for _ in range(3):
        engine.step()
    seen: list[StepFinished] = []
    engine.bus.subscribe(seen.append, StepFinished)
    engine.step()
    assert seen[-1].preempted_req_ids == ("b",)
    b = engine.scheduler.requests["b"]
    run_to_end(engine)
    resumed = [e.num_scheduled_tokens["b"] for e in seen if "b" in e.num_scheduled_tokens]
    # b had 9 tokens; its first full block (4 tokens) was freed last, survived in the
    # free queue, and is hit on resume: 9 - 4 = 5 tokens are recomputed.
    assert resumed[0] == 5
    assert b.num_cached_tokens == 4
    assert_no_leak(engine)


def test_freed_blocks_return_tail_first() -> None:
    engine = make_engine(enable_prefix_caching=True, block_size=4)
    engine.add_request([3] * 12, SamplingParams(max_tokens=1), request_id="a")
    engine.step()  # a: 12 prompt tokens in 3 blocks; samples once and finishes
    pool = engine.scheduler.kv_cache_manager.block_pool
    tail = [b.block_id for b in pool.free_block_queue.get_all_free_blocks()][-3:]
    # Blocks 1, 2, 3 were allocated in order and freed in reverse.
    assert tail == [3, 2, 1]
    assert_no_leak(engine)


def test_eviction_reuses_least_recently_freed_and_drops_its_hash() -> None:
    engine = make_engine(
        enable_prefix_caching=True, block_size=4, num_gpu_blocks=5, max_model_len=16
    )
    engine.add_request([3] * 8, SamplingParams(max_tokens=1), request_id="a")
    a = engine.scheduler.requests["a"]
    run_to_end(engine)
    pool = engine.scheduler.kv_cache_manager.block_pool
    assert set(pool.cached_block_hash_to_block) == set(a.block_hashes[:2])
    engine.add_request([4] * 15, SamplingParams(max_tokens=1), request_id="b")
    b = engine.scheduler.requests["b"]
    run_to_end(engine)
    # 'b' needed all 4 usable blocks, evicting both of a's cached blocks.
    assert set(pool.cached_block_hash_to_block) == set(b.block_hashes[:3])
    assert not set(a.block_hashes) & set(pool.cached_block_hash_to_block)
    assert_no_leak(engine)
