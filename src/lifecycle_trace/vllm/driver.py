"""Run a workload on vLLM 0.22.1's real scheduler and KV cache manager, on the CPU.

No model runs: a scripted model answers every batch (token 7, or the
workload's EOS / stop token at a chosen output index), so what is exercised is
exactly vLLM's ``Scheduler`` (or ``AsyncScheduler``), its request queues and its
``KVCacheManager``. The scheduler is built as vLLM's engine core builds it,
from a ``VllmConfig`` (``DeviceConfig(device="cpu")``, a model config read from
a small hand-written ``config.json`` without a tokenizer) and a
``KVCacheConfig`` written by hand with the workload's number of blocks.

An engine step is vLLM's: ``EngineCore.step`` (schedule, run, update), or under
async scheduling ``EngineCore.step_with_batch_queue`` with a batch queue of 2,
in the regime where the model is still busy with the previous batch whenever
the next ``schedule()`` runs.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs

from lifecycle_trace.vllm.scheduler import attach
from minivllm.bus import Handler
from minivllm.tokenizer import ByteTokenizer

__all__ = [
    "EOS_TOKEN_ID",
    "FILLER_TOKEN_ID",
    "MODEL_DIR",
    "VllmStep",
    "build_scheduler",
    "run_requests",
]

MODEL_DIR = Path(__file__).parent / "model"
"""The hand-written model config (a one-layer Llama shape; no weights are ever loaded)."""

EOS_TOKEN_ID = ByteTokenizer.eos_token_id
"""The EOS id given to vLLM's requests: minivllm's, so one script means the same on both engines."""

FILLER_TOKEN_ID = 7
"""What the scripted model samples where its script says nothing (never a stop token)."""

TokenScript = Callable[[str, int], int]
"""``(request_id, output index) -> token id``: what the scripted model samples."""


def filler_script(request_id: str, index: int) -> int:
    """Token 7 for every request at every position, as the reference runs sampled."""
    return FILLER_TOKEN_ID


@attrs.frozen
class VllmRequest:
    """One request to feed vLLM: its prompt, sampling limits, priority and arrival/abort steps."""

    id: str
    prompt_token_ids: tuple[int, ...] = attrs.field(converter=tuple)
    max_tokens: int = 16
    min_tokens: int = 0
    stop_token_ids: tuple[int, ...] = attrs.field(default=(), converter=tuple)
    ignore_eos: bool = False
    priority: int = 0
    arrival: int = 0
    abort: int | None = None


@attrs.frozen
class VllmStep:
    """What one engine step did, in the reference runs' shape (v2: placeholders, preemptions)."""

    step: int
    aborted: list[str]
    scheduled: dict[str, int]
    processed: list[str] | None
    preempted: list[str]
    free_blocks: int
    reqs: dict[str, list[Any]]


def _import_vllm() -> None:
    # No network: the model is a local directory and nothing may be fetched.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def build_scheduler(
    engine_kwargs: Mapping[str, Any],
    *,
    async_scheduling: bool = False,
    policy: str = "fcfs",
    scheduler_cls: type[Any] | None = None,
) -> Any:
    """vLLM's scheduler for minivllm engine keyword arguments, built on the CPU.

    ``engine_kwargs`` are ``LLMEngine``'s (``max_num_seqs``,
    ``max_num_batched_tokens``, ``block_size``, ``num_gpu_blocks``,
    ``max_model_len``, ``enable_chunked_prefill``,
    ``long_prefill_token_threshold``, ``enable_prefix_caching``,
    ``scheduler_reserve_full_isl``). ``scheduler_cls`` defaults to vLLM's
    ``Scheduler`` or ``AsyncScheduler``.
    """
    _import_vllm()
    import torch
    from vllm.config import CacheConfig, DeviceConfig, ModelConfig, SchedulerConfig, VllmConfig
    from vllm.v1.core.sched.async_scheduler import AsyncScheduler
    from vllm.v1.core.sched.scheduler import Scheduler
    from vllm.v1.kv_cache_interface import FullAttentionSpec, KVCacheConfig, KVCacheGroupSpec
    from vllm.v1.structured_output import StructuredOutputManager

    if policy not in ("fcfs", "priority"):
        raise ValueError(f"policy must be 'fcfs' or 'priority', got {policy!r}")
    kw = dict(engine_kwargs)
    max_model_len = int(kw.get("max_model_len", 1024))
    block_size = int(kw.get("block_size", 16))
    num_blocks = int(kw.get("num_gpu_blocks", 2048))
    model_config = ModelConfig(
        model=str(MODEL_DIR),
        skip_tokenizer_init=True,
        max_model_len=max_model_len,
        dtype="float32",
    )
    scheduler_config = SchedulerConfig(
        max_model_len=max_model_len,
        is_encoder_decoder=False,
        max_num_seqs=int(kw.get("max_num_seqs", 128)),
        max_num_batched_tokens=int(kw.get("max_num_batched_tokens", 2048)),
        enable_chunked_prefill=bool(kw.get("enable_chunked_prefill", True)),
        long_prefill_token_threshold=int(kw.get("long_prefill_token_threshold", 0)),
        scheduler_reserve_full_isl=bool(kw.get("scheduler_reserve_full_isl", True)),
        policy=policy,
        async_scheduling=async_scheduling,
    )
    cache_config = CacheConfig(
        block_size=block_size, enable_prefix_caching=bool(kw.get("enable_prefix_caching", False))
    )
    cache_config.num_gpu_blocks = num_blocks
    vllm_config = VllmConfig(
        model_config=model_config,
        scheduler_config=scheduler_config,
        cache_config=cache_config,
        device_config=DeviceConfig(device="cpu"),
    )
    kv_cache_config = KVCacheConfig(
        num_blocks=num_blocks,
        kv_cache_tensors=[],
        kv_cache_groups=[
            KVCacheGroupSpec(
                ["model.layers.0.self_attn.attn"],
                FullAttentionSpec(
                    block_size=block_size, num_kv_heads=1, head_size=1, dtype=torch.float32
                ),
            )
        ],
    )
    if scheduler_cls is None:
        scheduler_cls = AsyncScheduler if async_scheduling else Scheduler
    return scheduler_cls(
        vllm_config,
        kv_cache_config,
        StructuredOutputManager(vllm_config),
        block_size=block_size,
    )


def _block_hasher(scheduler: Any) -> Any:
    if not scheduler.cache_config.enable_prefix_caching:
        return None
    from vllm.utils.hashing import get_hash_fn_by_name
    from vllm.v1.core.kv_cache_utils import get_request_block_hasher, init_none_hash

    # As EngineCore does when prefix caching is on.
    hash_fn = get_hash_fn_by_name(scheduler.cache_config.prefix_caching_hash_algo)
    init_none_hash(hash_fn)
    return get_request_block_hasher(scheduler.block_size, hash_fn)


def _make_request(r: VllmRequest, arrival_time: float, block_hasher: Any) -> Any:
    from vllm.sampling_params import SamplingParams
    from vllm.v1.request import Request

    params = SamplingParams(
        max_tokens=r.max_tokens,
        min_tokens=r.min_tokens,
        stop_token_ids=list(r.stop_token_ids),
        ignore_eos=r.ignore_eos,
    )
    params.update_from_generation_config({}, eos_token_id=EOS_TOKEN_ID)
    return Request(
        request_id=r.id,
        prompt_token_ids=list(r.prompt_token_ids),
        sampling_params=params,
        pooling_params=None,
        arrival_time=arrival_time,
        priority=r.priority,
        block_hasher=block_hasher,
    )


def _model_output(scheduler: Any, scheduler_output: Any, script: TokenScript) -> Any:
    """The scripted model's answer, decided when the batch is scheduled."""
    from vllm.v1.outputs import ModelRunnerOutput

    req_ids = list(scheduler_output.num_scheduled_tokens)
    sampled: list[list[int]] = []
    for req_id in req_ids:
        request = scheduler.requests[req_id]
        if request.is_prefill_chunk:
            sampled.append([])
            continue
        # The output index this batch samples: under async scheduling the
        # placeholders include the one just added for this batch.
        index = len(request._output_token_ids) + max(request.num_output_placeholders - 1, 0)
        sampled.append([script(req_id, index)])
    return ModelRunnerOutput(
        req_ids=req_ids,
        req_id_to_index={r: i for i, r in enumerate(req_ids)},
        sampled_token_ids=sampled,
    )


def _state(request: Any) -> list[Any]:
    return [
        request.status.name,
        request.num_computed_tokens,
        request.num_tokens,
        request.num_output_tokens,
        request.num_output_placeholders,
        request.num_preemptions,
    ]


def run_requests(
    engine_kwargs: Mapping[str, Any],
    requests: Sequence[VllmRequest],
    *,
    async_scheduling: bool = False,
    policy: str = "fcfs",
    script: TokenScript = filler_script,
    observers: Iterable[Handler] = (),
    clock: Callable[[], int] | None = None,
    scheduler_cls: type[Any] | None = None,
    engine_id: str = "vllm",
    until_idle: bool = False,
    max_steps: int = 100_000,
) -> Iterator[VllmStep]:
    """Drive vLLM's scheduler through ``requests`` one engine step at a time; yield each step.

    Before step ``s`` the requests with ``arrival <= s`` are added and those
    with ``abort == s`` aborted (all in one ``finish_requests`` call, as
    vLLM's engine does), then one engine step runs. The run ends when no
    request is unfinished and none is still to arrive; with ``until_idle`` it
    goes on, as vLLM's engine loop does, while the scheduler still holds
    finished ids or a batch is in flight. With ``observers`` the scheduler is
    traced (:func:`lifecycle_trace.vllm.attach`, strict) and every event is
    delivered to them.
    """
    from vllm.v1.request import RequestStatus

    scheduler = build_scheduler(
        engine_kwargs,
        async_scheduling=async_scheduling,
        policy=policy,
        scheduler_cls=scheduler_cls,
    )
    observers = list(observers)
    if observers:
        kwargs: dict[str, Any] = {"engine_id": engine_id, "strict": True}
        if clock is not None:
            kwargs["clock"] = clock
        attach(scheduler, observers, **kwargs)
    hasher = _block_hasher(scheduler)
    pending = sorted(requests, key=lambda r: r.arrival)
    added: dict[str, Any] = {}
    batch_queue: deque[tuple[Any, Any]] = deque()
    num_added = 0
    try:
        for step in range(max_steps):
            # vLLM's engine loop asks whether it has work before taking new input
            # (which also tells a tracer that a step that only scheduled is over).
            scheduler.has_requests()
            while pending and pending[0].arrival <= step:
                r = pending.pop(0)
                request = _make_request(r, float(num_added), hasher)
                num_added += 1
                scheduler.add_request(request)
                added[r.id] = request
            aborted = [
                r.id
                for r in requests
                if r.abort == step and r.id in added and not added[r.id].is_finished()
            ]
            if aborted:
                scheduler.finish_requests(aborted, RequestStatus.FINISHED_ABORTED)
            has_work = scheduler.has_unfinished_requests() or (
                until_idle and (scheduler.has_requests() or bool(batch_queue))
            )
            if not has_work and not pending:
                return
            if async_scheduling:
                scheduled, processed, preempted = _async_step(scheduler, batch_queue, script)
            else:
                scheduled, processed, preempted = _sync_step(scheduler, script)
            yield VllmStep(
                step=step,
                aborted=aborted,
                scheduled=scheduled,
                processed=processed,
                preempted=preempted,
                free_blocks=scheduler.kv_cache_manager.block_pool.get_num_free_blocks(),
                reqs={rid: _state(req) for rid, req in added.items()},
            )
        raise RuntimeError(f"the workload did not finish within {max_steps} steps")
    finally:
        scheduler.shutdown()


_StepResult = tuple[dict[str, int], list[str] | None, list[str]]


def _sync_step(scheduler: Any, script: TokenScript) -> _StepResult:
    """``EngineCore.step``: schedule, run the model, update."""
    if not scheduler.has_requests():
        return {}, None, []
    output = scheduler.schedule()
    model_output = _model_output(scheduler, output, script)
    scheduler.update_from_output(output, model_output)
    return (
        dict(output.num_scheduled_tokens),
        list(output.num_scheduled_tokens),
        sorted(output.preempted_req_ids),
    )


def _async_step(
    scheduler: Any, batch_queue: deque[tuple[Any, Any]], script: TokenScript
) -> _StepResult:
    """``EngineCore.step_with_batch_queue`` with a queue of 2 and a model still busy."""
    scheduled: dict[str, int] = {}
    preempted: list[str] = []
    if scheduler.has_requests():
        output = scheduler.schedule()
        scheduled = dict(output.num_scheduled_tokens)
        preempted = sorted(output.preempted_req_ids)
        batch_queue.appendleft((output, _model_output(scheduler, output, script)))
        if output.total_num_scheduled_tokens > 0 and len(batch_queue) < 2:
            return scheduled, None, preempted
    elif not batch_queue:
        return scheduled, None, preempted
    output, model_output = batch_queue.pop()
    scheduler.update_from_output(output, model_output)
    return scheduled, list(output.num_scheduled_tokens), preempted
