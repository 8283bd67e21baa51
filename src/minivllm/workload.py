"""Replayable workloads and the one driver that runs them.

A workload is an engine configuration and requests with an arrival step, an
optional abort step and a scripted model (the output index at which it
samples EOS or the stop token); the JSON form is that of the reference runs
(``tests/data/vllm_examples``, ``tests/data/vllm_examples_v2``). Request
``rI`` has the prompt ``[100 + I] * prompt_len``. :class:`WorkloadRun` is
the one driver: before step ``s`` the requests arriving at ``s`` are added,
then those whose abort step is ``s`` and which are still unfinished are
aborted, then one engine step runs.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from collections.abc import Iterator
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs

from minivllm.engine.llm_engine import LLMEngine
from minivllm.model_executor.dummy import DummyModelRunner
from minivllm.model_executor.runner import output_index
from minivllm.request import Request
from minivllm.sampling_params import SamplingParams
from minivllm.tokenizer import ByteTokenizer

FILLER_TOKEN_ID = 7
"""What the reference runs' model samples wherever its script says nothing (never EOS)."""

STOP_TOKEN_ID = 9
"""The stop token of the reference runs' ``stop_at``."""

_V2_CONFIG_KEYS = frozenset({"async_scheduling", "policy"})
_V2_REQUEST_KEYS = frozenset(
    {"priority", "eos_at", "stop_at", "min_tokens", "ignore_eos", "abort_at", "stop_token_ids"}
)


@attrs.frozen
class WorkloadRequest:
    """One request of a workload.

    ``abort``: aborted before that step if still unfinished. ``eos_at`` /
    ``stop_at``: the output index at which the workload's model samples EOS /
    :data:`STOP_TOKEN_ID`.
    """

    id: str
    prompt_token_ids: tuple[int, ...] = attrs.field(converter=tuple[int, ...])
    sampling_params: SamplingParams = attrs.field(factory=SamplingParams)
    arrival: int = 0
    abort: int | None = None
    priority: int = 0
    eos_at: int | None = None
    stop_at: int | None = None


@attrs.frozen
class Workload:
    """Engine keyword arguments and the requests to feed it.

    ``trace_format`` is the reference trace it compares with. 1: the run
    ends once every request finished, and each request is ``[status,
    num_computed_tokens, num_tokens, num_output_tokens]``. 2: the run goes on
    as vLLM's engine core does while it still holds finished ids or a batch in
    flight, each step also names the batch it ``processed``, and each request
    adds ``num_output_placeholders`` and ``num_preemptions``.
    """

    engine_kwargs: Mapping[str, Any]
    requests: tuple[WorkloadRequest, ...] = attrs.field(converter=tuple[WorkloadRequest, ...])
    trace_format: int = attrs.field(default=1, validator=attrs.validators.in_((1, 2)))

    @classmethod
    def from_reference(cls, data: Mapping[str, Any], trace_format: int | None = None) -> Workload:
        """Read the reference runs' JSON form (``config`` + ``requests``).

        ``trace_format`` defaults to 2 when the workload uses any key that
        only the second set of reference runs has, else 1.
        """
        config = dict(data["config"])
        kwargs: dict[str, Any] = {
            "max_num_seqs": config["max_num_seqs"],
            "max_num_batched_tokens": config["max_num_batched_tokens"],
            "block_size": config["block_size"],
            "num_gpu_blocks": config["num_blocks"],
            "enable_chunked_prefill": config.get("enable_chunked_prefill", True),
            "long_prefill_token_threshold": config.get("long_prefill_token_threshold", 0),
            "enable_prefix_caching": config.get("enable_prefix_caching", False),
            "scheduler_reserve_full_isl": config.get("scheduler_reserve_full_isl", True),
            "async_scheduling": config.get("async_scheduling", False),
            "policy": config.get("policy", "fcfs"),
        }
        # The reference runs drove vLLM's scheduler directly, which skips the
        # engine's start-up check that one max_model_len request fits the KV
        # cache. Where it would not, use the largest length that fits: a
        # request could only come near it by holding every block.
        usable_tokens = (config["num_blocks"] - 1) * config["block_size"]
        kwargs["max_model_len"] = min(config.get("max_model_len", 4096), usable_tokens)
        requests = [_reference_request(i, r) for i, r in enumerate(data["requests"])]
        if trace_format is None:
            uses_v2 = bool(_V2_CONFIG_KEYS & config.keys()) or any(
                _V2_REQUEST_KEYS & r.keys() for r in data["requests"]
            )
            trace_format = 2 if uses_v2 else 1
        return cls(kwargs, requests, trace_format)

    @classmethod
    def load(cls, path: str | Path, trace_format: int | None = None) -> Workload:
        """Read a reference workload file."""
        return cls.from_reference(json.loads(Path(path).read_text()), trace_format)

    def model(self) -> DummyModelRunner:
        """The workload's model: :data:`FILLER_TOKEN_ID` except where a request's script says."""
        scripts = {
            r.id: (r.eos_at, r.stop_at)
            for r in self.requests
            if r.eos_at is not None or r.stop_at is not None
        }
        if not scripts:
            return DummyModelRunner(token_id=FILLER_TOKEN_ID)
        eos_token_id = ByteTokenizer.eos_token_id

        def sample(request: Request) -> int:
            eos_at, stop_at = scripts.get(request.request_id, (None, None))
            index = output_index(request)
            if index == eos_at:
                return eos_token_id
            if index == stop_at:
                return STOP_TOKEN_ID
            return FILLER_TOKEN_ID

        return DummyModelRunner(sample_fn=sample)


def _reference_request(index: int, r: Mapping[str, Any]) -> WorkloadRequest:
    sampling: dict[str, Any] = {"max_tokens": r.get("max_tokens"), **r.get("sampling", {})}
    for key in ("min_tokens", "ignore_eos", "stop_token_ids"):
        if key in r:
            sampling[key] = r[key]
    if r.get("stop_at") is not None:
        stop_token_ids = tuple(sampling.get("stop_token_ids", ()))
        if STOP_TOKEN_ID not in stop_token_ids:
            sampling["stop_token_ids"] = (*stop_token_ids, STOP_TOKEN_ID)
    abort = r.get("abort_at", r.get("abort"))
    return WorkloadRequest(
        id=r["id"],
        prompt_token_ids=[100 + index] * r["prompt_len"],
        sampling_params=SamplingParams(**sampling),
        arrival=r.get("arrival", 0),
        abort=abort,
        priority=r.get("priority", 0),
        eos_at=r.get("eos_at"),
        stop_at=r.get("stop_at"),
    )


@attrs.frozen
class StepRecord:
    """What one step did, in the reference runs' shape.

    ``processed``: the ids of the batch whose model output the step consumed,
    None if none. ``reqs``: every request added so far, as ``[status name,
    num_computed_tokens, num_tokens, num_output_tokens,
    num_output_placeholders, num_preemptions]``.
    """

    step: int
    aborted: list[str]
    scheduled: dict[str, int]
    processed: list[str] | None
    preempted: list[str]
    free_blocks: int
    reqs: dict[str, list[Any]]

    def to_json(self, trace_format: int = 2) -> dict[str, Any]:
        """The reference runs' JSON line in ``trace_format`` 1 or 2."""
        line = attrs.asdict(self)
        if trace_format == 1:
            del line["processed"]
            line["reqs"] = {rid: state[:4] for rid, state in self.reqs.items()}
        return line


class WorkloadNotDrained(RuntimeError):
    """The workload was still running after ``max_steps`` steps."""


class WorkloadRun:
    """A workload running on an engine, one step per iteration.

    Iterating adds each step's arrivals, aborts the requests whose abort step
    it is and that are still unfinished, runs one engine step and yields the
    step's number; between steps the caller may look at the engine (poll it,
    check it) and :meth:`record` describes the step just run. The run ends
    when the workload is done: every request added and finished or, for
    ``trace_format`` 2, also nothing left for the engine core to do (finished
    ids to hand on, batches in flight). Raises :class:`WorkloadNotDrained`
    if it has not ended after ``max_steps`` steps.
    """

    def __init__(self, engine: LLMEngine, workload: Workload, max_steps: int = 100_000) -> None:
        self.engine = engine
        self.workload = workload
        self.max_steps = max_steps
        self.step = -1
        self.aborted: list[str] = []
        # Every request added so far, by id, in the order added.
        self.added: dict[str, Request] = {}

    def __iter__(self) -> Iterator[int]:
        engine, workload = self.engine, self.workload
        pending = sorted(workload.requests, key=lambda r: r.arrival)
        until_idle = workload.trace_format == 2
        for step in range(self.max_steps + 1):
            while pending and pending[0].arrival <= step:
                r = pending.pop(0)
                engine.add_request(
                    list(r.prompt_token_ids),
                    r.sampling_params,
                    request_id=r.id,
                    priority=r.priority,
                )
                self.added[r.id] = engine.scheduler.requests[r.id]
            aborted = [
                r.id
                for r in workload.requests
                if r.abort == step and r.id in self.added and not self.added[r.id].is_finished()
            ]
            if aborted:
                engine.abort_request(aborted)
            busy = engine.has_work() if until_idle else engine.has_unfinished_requests()
            if not busy and not pending:
                return
            if step == self.max_steps:
                break
            engine.step()
            self.step, self.aborted = step, aborted
            yield step
        raise WorkloadNotDrained(
            f"the workload was still running after max_steps={self.max_steps} steps; "
            f"unfinished: {sorted(engine.scheduler.requests)}"
        )

    def record(self) -> StepRecord:
        """What the step just run did, in the reference runs' shape."""
        result = self.engine.last_step
        if result is None or self.step < 0:
            raise RuntimeError("record() describes a step: iterate the run first")
        scheduled, processed = result.scheduled, result.processed
        return StepRecord(
            step=self.step,
            aborted=self.aborted,
            scheduled={} if scheduled is None else dict(scheduled.num_scheduled_tokens),
            processed=None if processed is None else list(processed.num_scheduled_tokens),
            preempted=[] if scheduled is None else sorted(scheduled.preempted_req_ids),
            free_blocks=self.engine.scheduler.kv_cache_manager.block_pool.get_num_free_blocks(),
            reqs={
                rid: [
                    req.status.name,
                    req.num_computed_tokens,
                    req.num_tokens,
                    req.num_output_tokens,
                    req.num_output_placeholders,
                    req.num_preemptions,
                ]
                for rid, req in self.added.items()
            },
        )


def run_workload(
    workload: Workload,
    model: Any = None,
    max_steps: int = 100_000,
    on_engine: Callable[[LLMEngine], None] | None = None,
    **extra_engine_kwargs: Any,
) -> Iterator[StepRecord]:
    """Run ``workload`` on a fresh engine (see :class:`WorkloadRun`); yield each step's record.

    ``model`` defaults to the workload's own (:meth:`Workload.model`: token 7,
    as the reference runs sampled, and the scripted EOS and stop tokens).
    ``on_engine`` sees the engine before the first step (to subscribe observers).
    """
    engine = LLMEngine(
        model if model is not None else workload.model(),
        **{**workload.engine_kwargs, **extra_engine_kwargs},
    )
    if on_engine is not None:
        on_engine(engine)
    run = WorkloadRun(engine, workload, max_steps)
    for _ in run:
        yield run.record()
