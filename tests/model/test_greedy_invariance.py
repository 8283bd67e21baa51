"""Greedy outputs do not depend on chunking, batching, preemption, prefix caching or mode."""

from __future__ import annotations

from collections import Counter
from typing import Any

from hypothesis import HealthCheck
from hypothesis import event
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

from helpers.tiny import Job
from helpers.tiny import make_runner
from helpers.tiny import reference_greedy
from helpers.tiny import reference_model
from helpers.tiny import run_jobs
from minivllm import LLMEngine
from minivllm import SamplingParams
from minivllm.events import CounterUpdated
from minivllm.events import StepFinished

MAX_MODEL_LEN = 32  # prompts reach 22 tokens, so some requests stop at this length

# Each example runs a whole engine (tens of ms): a quarter of the active profile's budget.
_EXAMPLES = max(5, settings().max_examples // 4)


@st.composite
def greedy_jobs(draw: st.DrawFn) -> list[Job]:
    """A few greedy requests, some sharing a prefix, arriving over the first steps."""
    token = st.integers(0, 257)
    prefixes = draw(st.lists(st.lists(token, min_size=2, max_size=16), min_size=1, max_size=2))
    jobs = []
    for _ in range(draw(st.integers(1, 6))):
        # Two in three requests share a prefix, so prefix-cache hits are common.
        prefix = draw(st.sampled_from([[], *prefixes, *prefixes]))
        suffix = draw(st.lists(token, min_size=0 if prefix else 1, max_size=6))
        max_tokens = draw(st.integers(1, 16))
        params = SamplingParams(
            temperature=0,
            max_tokens=max_tokens,
            ignore_eos=draw(st.booleans()),
            min_tokens=draw(st.integers(0, min(2, max_tokens))),
        )
        jobs.append(Job(tuple(prefix + suffix), params, arrival=draw(st.integers(0, 3))))
    return jobs


@st.composite
def engine_configs(draw: st.DrawFn) -> dict[str, Any]:
    """Chunk sizes, batch limits and KV sizes, from ample down to preempting every few steps."""
    block_size = draw(st.sampled_from([1, 2, 4, 8]))
    min_blocks = -(-MAX_MODEL_LEN // block_size) + 1
    max_num_seqs = draw(st.sampled_from([1, 2, 3, 4, 6]))
    chunked = draw(st.booleans())
    # Without chunking a whole prompt must fit in one step's budget.
    min_budget = max_num_seqs if chunked else MAX_MODEL_LEN
    return {
        "max_num_seqs": max_num_seqs,
        "max_num_batched_tokens": draw(st.integers(min_budget, 40)),
        "enable_chunked_prefill": chunked,
        "long_prefill_token_threshold": draw(st.integers(0, 6)),
        "block_size": block_size,
        # Barely more than one request's worth of blocks, so concurrent requests preempt.
        "num_gpu_blocks": min_blocks + draw(st.integers(0, min_blocks // 2)),
        "max_model_len": MAX_MODEL_LEN,
        "enable_prefix_caching": draw(st.booleans()),
        "scheduler_reserve_full_isl": draw(st.booleans()),
        "async_scheduling": draw(st.booleans()),
        "policy": draw(st.sampled_from(["fcfs", "priority"])),
    }


@settings(max_examples=_EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(jobs=greedy_jobs(), config=engine_configs())
def test_greedy_outputs_equal_the_no_cache_reference(
    jobs: list[Job], config: dict[str, Any], workloads: Counter[str]
) -> None:
    workloads["tiny model greedy"] += 1
    model = reference_model()
    engine = LLMEngine(make_runner(**config), **config)
    seen: Counter[str] = Counter()
    engine.bus.subscribe(lambda e: seen.update(preempted=len(e.preempted_req_ids)), StepFinished)
    engine.bus.subscribe(
        lambda e: seen.update(cache_hit=e.counter == "num_cached_tokens" and e.new > 0),
        CounterUpdated,
    )
    outputs = run_jobs(engine, jobs)
    for job, output in zip(jobs, outputs, strict=True):
        assert output == reference_greedy(model, job.prompt, job.params, MAX_MODEL_LEN, output)
    # Shown by --hypothesis-show-statistics: how often the interesting paths ran.
    event(f"preempted: {seen['preempted'] > 0}")
    event(f"prefix cache hit: {seen['cache_hit'] > 0}")


def test_greedy_outputs_survive_preemption() -> None:
    params = SamplingParams(temperature=0, max_tokens=10, ignore_eos=True)
    jobs = [Job(tuple(range(10 * i, 10 * i + 12)), params) for i in range(4)]
    config = {"block_size": 4, "num_gpu_blocks": 9, "max_model_len": 32}
    engine = LLMEngine(make_runner(**config), **config)
    preempted: list[str] = []
    engine.bus.subscribe(lambda event: preempted.extend(event.preempted_req_ids), StepFinished)
    outputs = run_jobs(engine, jobs)
    model = reference_model()
    assert preempted, "the workload was meant to preempt"
    assert outputs == [reference_greedy(model, job.prompt, job.params) for job in jobs]


def test_greedy_outputs_under_async_scheduling_with_preemption() -> None:
    # A batch's last input can be a token the previous batch sampled and the
    # scheduler has not appended yet: the runner must feed the one it sampled.
    params = SamplingParams(temperature=0, max_tokens=10, ignore_eos=True)
    jobs = [Job(tuple(range(10 * i, 10 * i + 12)), params) for i in range(4)]
    config = {"block_size": 4, "num_gpu_blocks": 9, "max_model_len": 32, "async_scheduling": True}
    engine = LLMEngine(make_runner(**config), **config)
    preempted: list[str] = []
    engine.bus.subscribe(lambda event: preempted.extend(event.preempted_req_ids), StepFinished)
    outputs = run_jobs(engine, jobs)
    model = reference_model()
    assert preempted, "the workload was meant to preempt"
    assert outputs == [reference_greedy(model, job.prompt, job.params) for job in jobs]


def test_greedy_outputs_with_prefix_cache_hits() -> None:
    shared = tuple(range(40, 60))
    params = SamplingParams(temperature=0, max_tokens=6)
    jobs = [Job((*shared, 1), params), Job((*shared, 2, 3), params, arrival=2)]
    config = {"block_size": 4, "enable_prefix_caching": True}
    engine = LLMEngine(make_runner(**config), **config)
    ids = [engine.add_request(list(jobs[0].prompt), params)]
    engine.step()
    ids.append(engine.add_request(list(jobs[1].prompt), params))
    outputs: dict[str, list[int]] = {}
    cached: dict[str, int] = {}
    while engine.has_unfinished_requests():
        for out in engine.step():
            if out.finished:
                outputs[out.request_id] = list(out.outputs[0].token_ids)
                cached[out.request_id] = out.num_cached_tokens
    model = reference_model()
    assert cached[ids[1]] == 20
    assert [outputs[i] for i in ids] == [reference_greedy(model, j.prompt, params) for j in jobs]


def test_aborting_a_request_leaves_the_others_unchanged() -> None:
    params = SamplingParams(temperature=0, max_tokens=12, ignore_eos=True)
    prompts = [tuple(range(i, i + 9)) for i in (0, 50, 100)]
    config = {"block_size": 4, "max_num_batched_tokens": 8, "max_num_seqs": 4}
    engine = LLMEngine(make_runner(**config), **config)
    ids = [engine.add_request(list(p), params) for p in prompts]
    finished: dict[str, list[int]] = {}
    for step in range(100):
        if step == 4:
            engine.abort_request(ids[1])
        for out in engine.step():
            if out.finished:
                finished[out.request_id] = list(out.outputs[0].token_ids)
        if not engine.has_unfinished_requests():
            break
    model = reference_model()
    assert ids[1] not in finished
    for i in (0, 2):
        assert finished[ids[i]] == reference_greedy(model, prompts[i], params)
