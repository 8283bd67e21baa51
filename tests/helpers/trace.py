"""Shared helpers for the lifecycle_trace tests: random workloads and traced runs."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from hypothesis import strategies as st

from lifecycle_trace.eventlog import EventLog
from minivllm.engine.llm_engine import LLMEngine
from minivllm.sampling_params import SamplingParams
from minivllm.workload import StepRecord
from minivllm.workload import Workload
from minivllm.workload import WorkloadRequest
from minivllm.workload import run_workload

DATA = Path(__file__).parent.parent / "data" / "vllm_examples"
REFERENCE_NAMES = ("a", "b", "c", "d")
DATA_V2 = Path(__file__).parent.parent / "data" / "vllm_examples_v2"
REFERENCE_V2_NAMES = ("e_async", "f_priority", "g_async_preempt", "h_async_priority")
"""The reference runs with async scheduling and the priority policy."""


def reference(name: str) -> Workload:
    """One of the four reference workloads."""
    return Workload.load(DATA / f"{name}.json")


def reference_v2(name: str) -> Workload:
    """One of the four reference workloads with async scheduling or the priority policy."""
    return Workload.load(DATA_V2 / f"{name}.json")


def run_logged(workload: Workload, **engine_kwargs: Any) -> tuple[EventLog, list[StepRecord]]:
    """Run ``workload`` with a recorder attached; return the log and the per-step records."""
    log = EventLog()

    def attach(engine: LLMEngine) -> None:
        engine.bus.subscribe(log)

    records = list(run_workload(workload, on_engine=attach, **engine_kwargs))
    return log, records


@st.composite
def engine_kwargs(draw: st.DrawFn) -> dict[str, Any]:
    """Small, often tight engine configurations: chunking, preemption and cache hits happen."""
    block_size = draw(st.sampled_from([2, 4, 8]))
    max_model_len = draw(st.integers(8, 48))
    min_blocks = math.ceil(max_model_len / block_size) + 1
    max_num_seqs = draw(st.integers(1, 4))
    return {
        "max_num_seqs": max_num_seqs,
        "max_num_batched_tokens": draw(st.integers(max(max_num_seqs, 4), 64)),
        "block_size": block_size,
        "num_gpu_blocks": draw(st.integers(min_blocks, min_blocks + 12)),
        "max_model_len": max_model_len,
        "long_prefill_token_threshold": draw(st.sampled_from([0, 0, 5])),
        "enable_prefix_caching": draw(st.booleans()),
    }


@st.composite
def sampling_params(draw: st.DrawFn) -> SamplingParams:
    """Length-capped or stopped on token 7 (what the reference model samples)."""
    max_tokens = draw(st.integers(1, 12))
    stop = draw(st.sampled_from([(), (), (7,)]))
    min_tokens = draw(st.integers(0, max_tokens)) if stop else 0
    return SamplingParams(max_tokens=max_tokens, min_tokens=min_tokens, stop_token_ids=stop)


@st.composite
def workloads(draw: st.DrawFn, max_requests: int = 5, modes: bool = False) -> Workload:
    """An engine configuration and 1..max_requests requests with arrivals and some aborts.

    With ``modes``, async scheduling and the priority policy are each on or
    off, and requests get priorities 0..2.
    """
    kwargs = draw(engine_kwargs())
    if modes:
        kwargs["async_scheduling"] = draw(st.booleans())
        kwargs["policy"] = draw(st.sampled_from(["fcfs", "priority"]))
    n = draw(st.integers(1, max_requests))
    requests = []
    for i in range(n):
        prompt_len = draw(st.integers(1, kwargs["max_model_len"] - 1))
        # Few distinct tokens, so prompts share prefixes and the prefix cache hits.
        token = draw(st.sampled_from([100, 101]))
        requests.append(
            WorkloadRequest(
                id=f"r{i}",
                prompt_token_ids=[token] * prompt_len,
                sampling_params=draw(sampling_params()),
                arrival=draw(st.integers(0, 4)),
                abort=draw(st.one_of(st.none(), st.integers(0, 12))),
                priority=draw(st.integers(0, 2)) if modes else 0,
            )
        )
    return Workload(kwargs, requests)
