"""Replayable workloads: a config plus requests with arrival and abort steps.

The format is that of the reference runs (``tests/data/vllm_examples``):
request ``rI`` has the prompt ``[100 + I] * prompt_len``; before step ``s``
the requests with ``arrival <= s`` are added and those with ``abort == s`` are
aborted, then one engine step runs.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import attrs

from minivllm.engine.llm_engine import LLMEngine
from minivllm.events import StepFinished
from minivllm.model_executor.dummy import DummyModelRunner
from minivllm.request import Request
from minivllm.sampling_params import SamplingParams


@attrs.frozen
class WorkloadRequest:
    """One request of a workload."""

    id: str
    prompt_token_ids: tuple[int, ...] = attrs.field(converter=tuple[int, ...])
    sampling_params: SamplingParams = attrs.field(factory=SamplingParams)
    arrival: int = 0
    abort: int | None = None


@attrs.frozen
class Workload:
    """Engine keyword arguments and the requests to feed it."""

    engine_kwargs: Mapping[str, Any]
    requests: tuple[WorkloadRequest, ...] = attrs.field(converter=tuple[WorkloadRequest, ...])

    @classmethod
    def from_reference(cls, data: Mapping[str, Any]) -> Workload:
        """Read the reference runs' JSON form (``config`` + ``requests``)."""
        config = dict(data["config"])
        kwargs = {
            "max_num_seqs": config["max_num_seqs"],
            "max_num_batched_tokens": config["max_num_batched_tokens"],
            "block_size": config["block_size"],
            "num_gpu_blocks": config["num_blocks"],
            "enable_chunked_prefill": config["enable_chunked_prefill"],
            "long_prefill_token_threshold": config["long_prefill_token_threshold"],
            "enable_prefix_caching": config["enable_prefix_caching"],
        }
        # The reference runs drove vLLM's Scheduler directly, which skips the
        # engine's start-up check that one max_model_len request fits the KV
        # cache. Where it would not, use the largest length that fits: no
        # request of those runs comes near either limit, so nothing changes.
        usable_tokens = (config["num_blocks"] - 1) * config["block_size"]
        kwargs["max_model_len"] = min(config.get("max_model_len", 4096), usable_tokens)
        requests = []
        for i, r in enumerate(data["requests"]):
            requests.append(
                WorkloadRequest(
                    id=r["id"],
                    prompt_token_ids=[100 + i] * r["prompt_len"],
                    sampling_params=SamplingParams(
                        max_tokens=r["max_tokens"], **r.get("sampling", {})
                    ),
                    arrival=r.get("arrival", 0),
                    abort=r.get("abort"),
                )
            )
        return cls(kwargs, requests)

    @classmethod
    def load(cls, path: str | Path) -> Workload:
        """Read a reference workload file."""
        return cls.from_reference(json.loads(Path(path).read_text()))


@attrs.frozen
class StepRecord:
    """What one step did, in the reference runs' shape."""

    step: int
    aborted: list[str]
    scheduled: dict[str, int]
    preempted: list[str]
    free_blocks: int
    reqs: dict[str, list[Any]]

    def to_json(self) -> dict[str, Any]:
        """The reference runs' JSON line."""
        return attrs.asdict(self)


def run_workload(
    workload: Workload,
    model: Any = None,
    max_steps: int = 100_000,
    on_engine: Callable[[LLMEngine], None] | None = None,
    **extra_engine_kwargs: Any,
) -> Iterator[StepRecord]:
    """Drive an engine through ``workload`` one step at a time, yielding each step's record.

    ``model`` defaults to a runner that always samples token 7, as the
    reference runs did. ``on_engine`` sees the engine before the first step
    (to subscribe observers).
    """
    engine = LLMEngine(
        model if model is not None else DummyModelRunner(token_id=7),
        **workload.engine_kwargs,
        **extra_engine_kwargs,
    )
    if on_engine is not None:
        on_engine(engine)
    last: list[StepFinished] = []
    engine.bus.subscribe(last.append, StepFinished)
    pending = sorted(workload.requests, key=lambda r: r.arrival)
    added: dict[str, Request] = {}
    step = 0
    while step < max_steps:
        while pending and pending[0].arrival <= step:
            r = pending.pop(0)
            engine.add_request(list(r.prompt_token_ids), r.sampling_params, request_id=r.id)
            added[r.id] = engine.scheduler.requests[r.id]
        aborted = [
            r.id
            for r in workload.requests
            if r.abort == step and r.id in added and not added[r.id].is_finished()
        ]
        if aborted:
            engine.abort_request(aborted)
        if not engine.has_unfinished_requests() and not pending:
            return
        engine.step()
        finished_step = last.pop()
        yield StepRecord(
            step=step,
            aborted=aborted,
            scheduled=dict(finished_step.num_scheduled_tokens),
            preempted=sorted(finished_step.preempted_req_ids),
            free_blocks=finished_step.num_free_blocks,
            reqs={
                rid: [
                    req.status.name,
                    req.num_computed_tokens,
                    req.num_tokens,
                    req.num_output_tokens,
                ]
                for rid, req in added.items()
            },
        )
        step += 1
