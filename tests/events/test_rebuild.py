"""The engine's state can be rebuilt from its events alone, after every step."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

from minivllm import DummyModelRunner
from minivllm import LLMEngine
from minivllm import Request
from minivllm import SamplingParams
from minivllm.events import CounterUpdated
from minivllm.events import Event
from minivllm.events import RequestAdded
from minivllm.events import StatusChanged
from minivllm.workload import Workload
from minivllm.workload import WorkloadRequest

DATA = Path(__file__).parent.parent / "data" / "vllm_examples"
FIELDS = ("status", "num_computed_tokens", "num_tokens", "num_cached_tokens", "num_preemptions")


class Fold:
    """Per-request state from events only; checks every counter event continues the last."""

    def __init__(self) -> None:
        self.state: dict[str, dict[str, Any]] = {}
        self.seqs: set[int] = set()

    def __call__(self, event: Event) -> None:
        assert event.seq not in self.seqs, f"event {event.seq} delivered twice"
        self.seqs.add(event.seq)
        if isinstance(event, RequestAdded):
            self.state[event.request_id] = {
                "status": "WAITING",
                "num_computed_tokens": 0,
                "num_tokens": event.num_prompt_tokens,
                "num_cached_tokens": 0,
                "num_preemptions": 0,
                "prompt": event.num_prompt_tokens,
            }
        elif isinstance(event, StatusChanged):
            s = self.state[event.request_id]
            assert s["status"] == event.old_status.name
            assert (s["num_computed_tokens"], s["num_tokens"]) == (
                event.num_computed_tokens,
                event.num_tokens,
            )
            assert event.num_output_tokens == s["num_tokens"] - s["prompt"]
            s["status"] = event.new_status.name
        elif isinstance(event, CounterUpdated):
            s = self.state[event.request_id]
            assert s[event.counter] == event.old, f"missed an update of {event.counter}"
            s[event.counter] = event.new

    def view(self, request_id: str) -> tuple[Any, ...]:
        s = self.state[request_id]
        return (*tuple(s[f] for f in FIELDS), s["num_tokens"] - s["prompt"])


def actual(r: Request) -> tuple[Any, ...]:
    return (
        r.status.name,
        r.num_computed_tokens,
        r.num_tokens,
        r.num_cached_tokens,
        r.num_preemptions,
        r.num_output_tokens,
    )


def check_workload(workload: Workload, model: Any = None) -> int:
    fold = Fold()
    engine = LLMEngine(
        model or DummyModelRunner(token_id=7), observers=[fold], **workload.engine_kwargs
    )
    pending = sorted(workload.requests, key=lambda r: r.arrival)
    live: dict[str, Request] = {}
    step = 0
    while pending or engine.has_unfinished_requests():
        assert step < 5_000, "the engine did not drain"
        while pending and pending[0].arrival <= step:
            r = pending.pop(0)
            engine.add_request(list(r.prompt_token_ids), r.sampling_params, request_id=r.id)
            live[r.id] = engine.scheduler.requests[r.id]
        engine.abort_request([r.id for r in workload.requests if r.abort == step])
        if engine.has_unfinished_requests():
            engine.step()
        for rid, request in live.items():
            assert fold.view(rid) == actual(request), f"step {step}, request {rid}"
        step += 1
    return step


@pytest.mark.parametrize("name", ["a", "b", "c", "d"])
def test_rebuild_on_the_reference_runs(name: str) -> None:
    assert check_workload(Workload.load(DATA / f"{name}.json")) > 0


@st.composite
def workloads(draw: st.DrawFn) -> Workload:
    block_size = draw(st.sampled_from([2, 4, 16]))
    max_model_len = draw(st.integers(8, 64))
    min_blocks = -(-max_model_len // block_size) + 1
    num_gpu_blocks = draw(st.integers(min_blocks, min_blocks * 3))
    max_num_seqs = draw(st.integers(1, 6))
    chunked = draw(st.booleans())
    budget = draw(st.integers(max(max_num_seqs, 1 if chunked else max_model_len), 96))
    kwargs = {
        "block_size": block_size,
        "max_model_len": max_model_len,
        "num_gpu_blocks": num_gpu_blocks,
        "max_num_seqs": max_num_seqs,
        "max_num_batched_tokens": max(budget, max_num_seqs),
        "enable_chunked_prefill": chunked,
        "long_prefill_token_threshold": draw(st.sampled_from([0, 0, 3, 8])),
        "enable_prefix_caching": draw(st.booleans()),
    }
    requests = []
    for i in range(draw(st.integers(1, 6))):
        length = draw(st.integers(1, max_model_len - 1))
        prefix = draw(st.sampled_from([[], [9] * block_size, [9] * (2 * block_size)]))
        prompt = (prefix + [i + 1] * length)[: max_model_len - 1]
        max_tokens = draw(st.integers(1, 12))
        requests.append(
            WorkloadRequest(
                id=f"r{i}",
                prompt_token_ids=prompt,
                sampling_params=SamplingParams(
                    max_tokens=max_tokens, min_tokens=draw(st.integers(0, max_tokens))
                ),
                arrival=draw(st.integers(0, 6)),
                abort=draw(st.none() | st.integers(0, 12)),
            )
        )
    return Workload(kwargs, requests)


@settings(deadline=None)
@given(workloads(), st.sampled_from([None, 257, 5]))
def test_rebuild_on_random_workloads(workload: Workload, eos_at: int | None) -> None:
    # The runner emits EOS (257) at output position 2 in some examples, so stops happen.
    model = None
    if eos_at is not None:
        model = DummyModelRunner(sample_fn=lambda r: 257 if r.num_output_tokens == 2 else 7)
    check_workload(workload, model)
