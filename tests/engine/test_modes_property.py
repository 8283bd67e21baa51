"""Random workloads in every scheduling mode: async invariants, the same outputs in every mode."""

from __future__ import annotations

from collections import Counter
from typing import Any

import attrs
from hypothesis import HealthCheck
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

from minivllm import LLMEngine
from minivllm import SamplingParams
from minivllm.workload import Workload
from minivllm.workload import WorkloadRequest
from minivllm.workload import WorkloadRun
from minivllm.workload import run_workload

MAX_MODEL_LEN = 48
MODES = [(False, "fcfs"), (True, "fcfs"), (False, "priority"), (True, "priority")]


@st.composite
def mode_workloads(draw: st.DrawFn, aborts: bool = True) -> Workload:
    """A config from ample to preempting every few steps, and up to 6 scripted requests."""
    block_size = draw(st.sampled_from([2, 4, 8]))
    min_blocks = -(-MAX_MODEL_LEN // block_size) + 1
    max_num_seqs = draw(st.integers(1, 4))
    chunked = draw(st.booleans())
    config: dict[str, Any] = {
        "max_num_seqs": max_num_seqs,
        "max_num_batched_tokens": draw(st.integers(max_num_seqs if chunked else 48, 48)),
        "enable_chunked_prefill": chunked,
        "long_prefill_token_threshold": draw(st.sampled_from([0, 0, 3, 7])),
        "block_size": block_size,
        "num_gpu_blocks": min_blocks + draw(st.integers(0, min_blocks)),
        "max_model_len": MAX_MODEL_LEN,
        "enable_prefix_caching": draw(st.booleans()),
        "async_scheduling": draw(st.booleans()),
        "policy": draw(st.sampled_from(["fcfs", "priority"])),
    }
    shared = [50 + draw(st.integers(0, 3))] * draw(st.integers(0, 12))
    requests = []
    for i in range(draw(st.integers(1, 6))):
        prompt = shared + [100 + i] * draw(st.integers(1, 20))
        max_tokens = draw(st.integers(1, 20))
        params = SamplingParams(
            max_tokens=max_tokens,
            min_tokens=draw(st.integers(0, min(3, max_tokens))),
            ignore_eos=draw(st.booleans()),
            stop_token_ids=[9],
        )
        requests.append(
            WorkloadRequest(
                f"r{i}",
                prompt,
                params,
                arrival=draw(st.integers(0, 5)),
                abort=draw(st.none() | st.integers(0, 12)) if aborts else None,
                priority=draw(st.integers(0, 2)),
                eos_at=draw(st.none() | st.integers(0, 12)),
                stop_at=draw(st.none() | st.integers(0, 12)),
            )
        )
    return Workload(config, requests, trace_format=2)


_EXAMPLES = max(10, settings().max_examples // 2)


@settings(max_examples=_EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(workload=mode_workloads())
def test_counters_keep_their_relations_in_every_step(
    workload: Workload, workloads: Counter[str]
) -> None:
    workloads["engine modes"] += 1
    engine = LLMEngine(workload.model(), **workload.engine_kwargs)
    is_async = workload.engine_kwargs["async_scheduling"]
    pool = engine.scheduler.kv_cache_manager.block_pool
    for _ in WorkloadRun(engine, workload):
        for r in engine.scheduler.running:
            assert r.status.name == "RUNNING"
            if r.is_prefill_chunk:
                assert r.num_computed_tokens < r.num_tokens
                assert r.num_output_placeholders == 0
            elif is_async:
                # One batch is in flight between steps, so at most one placeholder.
                assert r.num_output_placeholders <= 1
                assert r.num_computed_tokens == r.num_tokens + r.num_output_placeholders - 1
            else:
                assert r.num_output_placeholders == 0
                assert r.num_computed_tokens == r.num_tokens - 1
        for r in engine.scheduler.waiting:
            assert r.num_computed_tokens == 0
            assert r.status.name in ("WAITING", "PREEMPTED")
        assert len(engine.scheduler.running) <= workload.engine_kwargs["max_num_seqs"]
    assert not engine.has_work()
    assert pool.get_num_free_blocks() == pool.num_gpu_blocks - 1
    assert all(b.ref_cnt == 0 for b in pool.blocks)


@settings(max_examples=_EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(workload=mode_workloads(aborts=False))
def test_every_mode_ends_every_request_the_same_way(
    workload: Workload, workloads: Counter[str]
) -> None:
    # The model's tokens depend only on the output index, so scheduling decides
    # when a request finishes, never how.
    workloads["engine modes"] += 1
    ends = []
    for async_scheduling, policy in MODES:
        kwargs = {**workload.engine_kwargs, "async_scheduling": async_scheduling, "policy": policy}
        records = list(run_workload(attrs.evolve(workload, engine_kwargs=kwargs)))
        ends.append({rid: (s[0], s[2], s[3]) for rid, s in records[-1].reqs.items()})
    assert all(end == ends[0] for end in ends)
