"""Hand-built scenarios for the scheduler's rarest corners, and the builders they use.

Random search reaches some situations only once in thousands of examples: a
priority victim already scheduled in its step, a preempted request's token in
flight that fills a cached block under async scheduling, a partial prefill that
chunked prefill off must refuse. :data:`CORNERS` states each as a small
scenario; the scenario property runs them first, as explicit hypothesis
examples, before its random search.
"""

from __future__ import annotations

from typing import Any

from helpers.engine import engine_config
from lifecycle_trace.testing import Scenario
from lifecycle_trace.testing import ScriptedSampler
from minivllm.config import EngineConfig
from minivllm.sampling_params import SamplingParams
from minivllm.workload import WorkloadRequest

__all__ = ["CORNERS", "config", "scenario"]


# The short names the scenario tables use, for the EngineConfig fields they set.
_SHORT_NAMES = {
    "chunked": "enable_chunked_prefill",
    "threshold": "long_prefill_token_threshold",
    "caching": "enable_prefix_caching",
    "full_isl": "scheduler_reserve_full_isl",
    "async_": "async_scheduling",
}


def config(*sizes: int, **options: Any) -> EngineConfig:
    """``engine_config`` of ``sizes``, with every optional behaviour off unless asked.

    ``sizes``: max_num_seqs, the token budget, block size, KV blocks, max_model_len.
    ``options``: EngineConfig fields, by their names or the short ones above
    (``chunked=True``, ``caching=True``, ``threshold=1``, ...).
    """
    fields: dict[str, Any] = {"enable_chunked_prefill": False, "scheduler_reserve_full_isl": False}
    fields.update({_SHORT_NAMES.get(name, name): value for name, value in options.items()})
    return engine_config(*sizes, **fields)


def scenario(
    config: EngineConfig,
    *requests: tuple[int | list[int], dict[str, Any]] | int,
    script: dict[str, dict[int, int]] | None = None,
    aborts: dict[str, int] | None = None,
    arrivals: dict[str, int] | None = None,
    priorities: dict[str, int] | None = None,
) -> Scenario:
    """Requests ``r0, r1, ...``: a prompt length (tokens 10) or token list, and sampling kwargs."""
    built = []
    for i, spec in enumerate(requests):
        prompt, params = (spec, {}) if isinstance(spec, int) else spec
        tokens = [10] * prompt if isinstance(prompt, int) else prompt
        rid = f"r{i}"
        built.append(
            WorkloadRequest(
                id=rid,
                prompt_token_ids=tokens,
                sampling_params=SamplingParams(**{"max_tokens": None, **params}),
                abort=(aborts or {}).get(rid),
                arrival=(arrivals or {}).get(rid, 0),
                priority=(priorities or {}).get(rid, 0),
            )
        )
    return Scenario(config, tuple(built), ScriptedSampler(script or {}))


CORNERS: dict[str, Scenario] = {
    "a priority victim already scheduled in its step gives its tokens back": scenario(
        config(4, 4, 1, 13, 12, chunked=True, policy="priority"),
        1,
        3,
        7,
        arrivals={"r0": 1, "r2": 1},
        priorities={"r1": 1},
    ),
    "async: a preempted request resumes on blocks its processed tokens filled": scenario(
        config(2, 20, 1, 21, 20, caching=True, async_=True), (1, {"max_tokens": 10}), 1
    ),
    "chunked prefill off: a prompt larger than the budget left waits": scenario(
        config(2, 10, 1, 11, 10), 5, 6
    ),
    "chunked prefill off: the threshold caps a prompt that then fits": scenario(
        config(3, 4, 1, 5, 4, threshold=1), 1, 1, 3
    ),
    "the full-sequence gate holds back a chunk that would fit": scenario(
        config(2, 2, 1, 6, 5, chunked=True, full_isl=True), 1, 1
    ),
    "the full-sequence gate counts hits held by a running request": scenario(
        config(2, 5, 1, 6, 5, caching=True, full_isl=True), 1, 1
    ),
    "prefix-cache hits do not use up the token budget": scenario(
        config(2, 2, 1, 4, 3, chunked=True, caching=True), 1, 1, 1
    ),
    "a resumed request hits the block its decode filled": scenario(
        config(4, 4, 4, 3, 6, chunked=True, caching=True), 1, 3
    ),
    "a stop string completed exactly at min_tokens does not stop": scenario(
        config(1, 8, 1, 9, 8),
        (1, {"min_tokens": 1, "stop": "a", "max_tokens": 4}),
        script={"r0": {0: ord("a"), 1: ord("a")}},
    ),
}
"""Scenario per corner, named by the situation it shows."""
