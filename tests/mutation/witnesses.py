"""For every mutant, a small workload on which it changes what the engine does.

A mutant that behaves like the engine on every workload is not a bug, and a
mutation check that counts it would overstate (or understate) the suite. Each
witness here is a workload (most were found by a differential hypothesis search
and shrunk) whose observable behaviour (per step: what was scheduled and
preempted, every live request's status and counters, the free blocks, and every
output the engine returned) differs between the engine and the mutant.
"""

from __future__ import annotations

from typing import Any

from helpers.corners import config
from helpers.corners import scenario
from lifecycle_trace.testing import FakeClock
from lifecycle_trace.testing import Scenario
from minivllm.engine.llm_engine import LLMEngine
from minivllm.events import StepFinished
from minivllm.sampling_params import RequestOutputKind

__all__ = ["WITNESSES", "behaviour"]


def behaviour(scenario: Scenario, max_steps: int = 200) -> list[Any]:
    """What an observer of the engine sees, step by step (ends with the error, if one is raised)."""
    seen: list[Any] = []
    try:
        engine = LLMEngine(scenario.model(), **scenario.engine_kwargs, clock=FakeClock())
        steps: list[StepFinished] = []
        engine.bus.subscribe(steps.append, StepFinished)
        last_arrival = max(r.arrival for r in scenario.requests)
        for step in range(max_steps):
            for r in scenario.requests:
                if r.arrival == step:
                    tokens = list(r.prompt_token_ids)
                    engine.add_request(
                        tokens, r.sampling_params, request_id=r.id, priority=r.priority
                    )
            live = [r.id for r in scenario.requests if r.abort == step]
            engine.abort_request([rid for rid in live if rid in engine.scheduler.requests])
            if not engine.has_unfinished_requests() and step >= last_arrival:
                return seen
            outputs = engine.step()
            last = steps[-1]
            requests = sorted(engine.scheduler.requests.items())
            seen.append(
                (
                    dict(last.num_scheduled_tokens),
                    last.preempted_req_ids,
                    last.num_free_blocks,
                    [_state(rid, r) for rid, r in requests],
                    [_output(o) for o in outputs],
                )
            )
        seen.append("did not drain")
    except Exception as error:  # a crash is behaviour too
        seen.append(f"{type(error).__name__}: {error}")
    return seen


def _state(rid: str, r: Any) -> tuple[Any, ...]:
    counters = (r.num_computed_tokens, r.num_tokens, r.num_cached_tokens, r.num_preemptions)
    return (rid, r.status.name, *counters, r.stop_reason)


def _output(o: Any) -> tuple[Any, ...]:
    completions = [(c.token_ids, c.text, c.finish_reason, c.stop_reason) for c in o.outputs]
    return (o.request_id, o.finished, o.num_cached_tokens, *completions)


_TWO = (1, 1)
_A, _B = ord("a"), ord("b")
# Which freed block a later request gets shows the free queue's order: one
# workload witnesses both mutants of that order.
_FREED_BLOCKS_REUSED = scenario(
    config(2, 4, 1, 5, 4, threshold=1, caching=True),
    (1, {"ignore_eos": True}),
    1,
    script={"r0": {0: 257}},
)

WITNESSES: dict[str, Scenario] = {
    "no reset of num_computed_tokens on preemption": scenario(config(2, 3, 1, 4, 3), *_TWO),
    "admit waiting requests in a step that preempted": scenario(
        config(2, 3, 1, 4, 3, threshold=1), *_TWO
    ),
    "preempt the first running request instead of the last": scenario(config(2, 3, 1, 4, 3), *_TWO),
    "off-by-one token budget": scenario(config(1, 1, 1, 46, 45, chunked=True), 2),
    "leak a block on abort": scenario(config(1, 3, 1, 4, 3), *_TWO, aborts={"r0": 1}),
    "finish one token past max_tokens": scenario(config(1, 3, 1, 4, 3), (1, {"max_tokens": 1})),
    "forget to free blocks on finish": scenario(config(1, 2, 1, 3, 2), 1),
    "prefix-cache hit on the whole prompt": scenario(
        config(1, 1, 1, 3, 2, chunked=True, caching=True), *_TWO
    ),
    "cache-hit blocks in the free queue not counted as allocations": scenario(
        config(2, 19, 1, 20, 19, caching=True), 1, 2
    ),
    "admit beyond max_num_seqs": scenario(config(1, 2, 1, 3, 2), *_TWO),
    "admit the shortest waiting prompt first": scenario(config(1, 5, 1, 6, 5), 2, 1),
    "preempted request goes to the back of waiting": scenario(config(3, 3, 1, 4, 3), 1, 1, 1),
    "a waiting request that does not fit moves to the back of the queue": scenario(
        config(3, 3, 1, 3, 2), 1, 1, 1, 1, 1
    ),
    "cache-hit tokens charged to the token budget": scenario(
        config(2, 2, 1, 4, 3, chunked=True, caching=True), 1, 1, 1
    ),
    "running requests not capped by the remaining budget": scenario(
        config(1, 1, 1, 5, 4, chunked=True), 3
    ),
    "requests admitted this step counted twice against max_num_seqs": scenario(
        config(2, 2, 1, 3, 2), *_TWO
    ),
    "a partial prefill with chunked prefill off": scenario(config(2, 10, 1, 11, 10), 5, 6),
    "chunked-prefill-off check ignores the long-prefill cap": scenario(
        config(3, 4, 1, 5, 4, threshold=1), 1, 1, 3
    ),
    "long-prefill threshold not applied to running requests": scenario(
        config(1, 4, 1, 5, 4, threshold=1), 3
    ),
    "full-sequence admission gate dropped": scenario(
        config(2, 2, 1, 6, 5, chunked=True, full_isl=True), *_TWO
    ),
    "full-sequence admission gate ignores prefix-cache hits": scenario(
        config(2, 5, 1, 6, 5, caching=True, full_isl=True), *_TWO
    ),
    "a resumed request skips the prefix-cache lookup": scenario(
        config(2, 5, 1, 6, 5, caching=True), *_TWO
    ),
    "prefix-cache hits capped at the prompt, not at all tokens": scenario(
        config(2, 5, 1, 6, 5, caching=True), *_TWO
    ),
    "a decode that fills a block does not cache it": scenario(
        config(4, 4, 4, 3, 6, chunked=True, caching=True), 1, 3
    ),
    "a finished request's blocks freed head first": _FREED_BLOCKS_REUSED,
    "a reused cached block keeps its stale hash": scenario(
        config(2, 8, 1, 9, 8, caching=True), *_TWO
    ),
    "block hash ignores the parent block": scenario(config(2, 6, 1, 7, 6, caching=True), *_TWO),
    "new blocks taken from the tail of the free queue (MRU eviction)": _FREED_BLOCKS_REUSED,
    "a prefix-cache hit on a free block stays in the free queue": scenario(
        config(2, 3, 1, 4, 3, caching=True), *_TWO
    ),
    "stop token honoured before min_tokens": scenario(
        config(1, 3, 1, 4, 3),
        (1, {"min_tokens": 2, "stop_token_ids": [1]}),
        script={"r0": {0: 1}},
    ),
    "stop token's stop_reason not recorded": scenario(
        config(1, 3, 1, 4, 3), (1, {"stop_token_ids": [1]}), script={"r0": {0: 1}}
    ),
    "off-by-one in the stop-string min_tokens gate": scenario(
        config(1, 8, 1, 9, 8),
        (1, {"min_tokens": 1, "stop": "a", "max_tokens": 4}),
        script={"r0": {0: _A, 1: _A}},
    ),
    "stop string searched in the whole text, not the newest": scenario(
        config(1, 8, 1, 9, 8),
        (1, {"min_tokens": 1, "stop": "a", "max_tokens": 4}),
        script={"r0": {0: _A, 1: _B}},
    ),
    "max_model_len cap one token late": scenario(config(1, 2, 1, 3, 2), (1, {"max_tokens": 2})),
    "num_cached_tokens records the chunk size": scenario(
        config(1, 8, 1, 9, 8, caching=True),
        (3, {"max_tokens": 1}),
        (3, {"max_tokens": 1}),
        arrivals={"r1": 2},
    ),
    "DELTA outputs carry every token so far": scenario(
        config(1, 3, 1, 4, 3), (1, {"output_kind": RequestOutputKind.DELTA})
    ),
    "a stop-string finish keeps the text past the stop string": scenario(
        config(1, 8, 1, 9, 8), (1, {"stop": "a", "max_tokens": 4}), script={"r0": {0: _B, 1: _A}}
    ),
    "a preempted request keeps its blocks": scenario(config(2, 3, 1, 4, 3), *_TWO),
    "async: no early skip of a request whose batches in flight reach max_tokens": scenario(
        config(3, 5, 1, 6, 5, async_=True), 1, 1, (1, {"max_tokens": 1})
    ),
    "async: a running request's output placeholders not counted in its tokens": scenario(
        config(1, 3, 1, 4, 3, async_=True), 1
    ),
    "async: the token of a batch in flight is dropped when its request was preempted": scenario(
        config(2, 3, 1, 4, 3, async_=True), *_TWO
    ),
    "async: a sampled token's full block is not cached": scenario(
        config(2, 20, 1, 21, 20, caching=True, async_=True), (1, {"max_tokens": 10}), 1
    ),
    "priority: the waiting heap ignores priority": scenario(
        config(3, 3, 1, 3, 2, policy="priority"), 1, 1, 1, priorities={"r1": 1}
    ),
    "priority: the victim is the highest-priority running request": scenario(
        config(2, 3, 1, 4, 3, policy="priority"), *_TWO
    ),
    "priority: an unscheduled victim's tokens stay charged to the budget": scenario(
        config(4, 4, 1, 13, 12, chunked=True, policy="priority"),
        1,
        3,
        7,
        arrivals={"r0": 1, "r2": 1},
        priorities={"r1": 1},
    ),
}
"""One workload per mutant name."""
