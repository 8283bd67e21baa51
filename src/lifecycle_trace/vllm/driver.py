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
the next ``schedule()`` runs. A step with nothing to do (vLLM's engine would
not step) still runs an empty schedule, as minivllm's engine counts it, so the
step numbers of the two engines' logs line up with a workload's arrival steps.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable
from collections.abc import Iterable
from collections.abc import Iterator
from collections.abc import Mapping
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import attrs

from lifecycle_trace.vllm.scheduler import attach
from minivllm.bus import EventBus
from minivllm.bus import Handler
from minivllm.sampling_params import SamplingParams
from minivllm.tokenizer import ByteTokenizer
from minivllm.workload import FILLER_TOKEN_ID
from minivllm.workload import STOP_TOKEN_ID
from minivllm.workload import StepRecord
from minivllm.workload import Workload
from minivllm.workload import WorkloadRun

__all__ = [
    "EOS_TOKEN_ID",
    "FILLER_TOKEN_ID",
    "MODEL_DIR",
    "STOP_TOKEN_ID",
    "TokenScript",
    "VllmEngine",
    "VllmEngineStep",
    "build_scheduler",
    "filler_script",
    "run_workload",
    "workload_script",
]

MODEL_DIR = Path(__file__).parent / "model"
"""The hand-written model config (a one-layer Llama shape; no weights are ever loaded)."""

EOS_TOKEN_ID = ByteTokenizer.eos_token_id
"""The EOS id given to vLLM's requests: minivllm's, so one script means the same on both engines."""

TokenScript = Callable[[str, int], int]
"""``(request_id, output index) -> token id``: what the scripted model samples."""


def filler_script(request_id: str, index: int) -> int:
    """Token 7 for every request at every position, as the reference runs sampled."""
    return FILLER_TOKEN_ID


@attrs.frozen
class VllmEngineStep:
    """What one engine step did: the batch it scheduled and the batch it processed (vLLM's)."""

    scheduled: Any
    processed: Any


_ENGINE_KWARGS = frozenset(
    {
        "max_num_seqs",
        "max_num_batched_tokens",
        "block_size",
        "num_gpu_blocks",
        "max_model_len",
        "enable_chunked_prefill",
        "long_prefill_token_threshold",
        "enable_prefix_caching",
        "scheduler_reserve_full_isl",
        "async_scheduling",
        "policy",
    }
)


def _import_vllm() -> None:
    # No network: the model is a local directory and nothing may be fetched.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def build_scheduler(
    engine_kwargs: Mapping[str, Any],
    *,
    scheduler_cls: type[Any] | None = None,
) -> Any:
    """vLLM's scheduler for minivllm engine keyword arguments, built on the CPU.

    ``engine_kwargs`` are ``LLMEngine``'s (``max_num_seqs``,
    ``max_num_batched_tokens``, ``block_size``, ``num_gpu_blocks``,
    ``max_model_len``, ``enable_chunked_prefill``,
    ``long_prefill_token_threshold``, ``enable_prefix_caching``,
    ``scheduler_reserve_full_isl``, ``async_scheduling``, ``policy``).
    ``scheduler_cls`` defaults to vLLM's ``Scheduler`` or ``AsyncScheduler``.
    """
    _import_vllm()
    import torch
    from vllm.config import CacheConfig
    from vllm.config import DeviceConfig
    from vllm.config import ModelConfig
    from vllm.config import SchedulerConfig
    from vllm.config import VllmConfig
    from vllm.v1.core.sched.async_scheduler import AsyncScheduler
    from vllm.v1.core.sched.scheduler import Scheduler
    from vllm.v1.kv_cache_interface import FullAttentionSpec
    from vllm.v1.kv_cache_interface import KVCacheConfig
    from vllm.v1.kv_cache_interface import KVCacheGroupSpec
    from vllm.v1.structured_output import StructuredOutputManager

    unknown = sorted(set(engine_kwargs) - _ENGINE_KWARGS)
    if unknown:
        raise ValueError(
            f"engine_kwargs {unknown} are not scheduler or cache settings the vLLM driver sets; "
            f"expected some of {sorted(_ENGINE_KWARGS)}"
        )
    async_scheduling = bool(engine_kwargs.get("async_scheduling", False))
    policy = engine_kwargs.get("policy", "fcfs")
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
    from vllm.v1.core.kv_cache_utils import get_request_block_hasher
    from vllm.v1.core.kv_cache_utils import init_none_hash

    # As EngineCore does when prefix caching is on.
    hash_fn = get_hash_fn_by_name(scheduler.cache_config.prefix_caching_hash_algo)
    init_none_hash(hash_fn)
    return get_request_block_hasher(scheduler.block_size, hash_fn)


def _model_output(scheduler: Any, scheduler_output: Any, script: TokenScript) -> Any:
    """The scripted model's answer for a batch, decided when the batch is scheduled."""
    from vllm.v1.outputs import ModelRunnerOutput

    req_ids = list(scheduler_output.num_scheduled_tokens)
    sampled: list[list[int]] = []
    for req_id in req_ids:
        request = scheduler.requests[req_id]
        if request.is_prefill_chunk:
            sampled.append([])
            continue
        # The output index this batch samples: num_computed_tokens already
        # counts the batch (and, under async scheduling, its placeholder).
        index = request.num_computed_tokens - request.num_prompt_tokens
        sampled.append([script(req_id, index)])
    return ModelRunnerOutput(
        req_ids=req_ids,
        req_id_to_index={r: i for i, r in enumerate(req_ids)},
        sampled_token_ids=sampled,
    )


def _vllm_params(params: SamplingParams, num_prompt_tokens: int, max_model_len: int) -> Any:
    """vLLM's sampling parameters for minivllm's, completed as vLLM's input processor does."""
    from vllm.sampling_params import SamplingParams as VllmSamplingParams

    vllm_params = VllmSamplingParams(
        max_tokens=params.max_tokens,
        min_tokens=params.min_tokens,
        stop_token_ids=list(params.stop_token_ids),
        ignore_eos=params.ignore_eos,
        temperature=params.temperature,
        top_p=params.top_p,
    )
    # Unset max_tokens means up to max_model_len, set after validation (input_processor.py).
    if vllm_params.max_tokens is None:
        vllm_params.max_tokens = max_model_len - num_prompt_tokens
    vllm_params.update_from_generation_config({}, eos_token_id=EOS_TOKEN_ID)
    return vllm_params


class VllmEngine:
    """vLLM's engine core loop around its real scheduler, with a scripted model.

    The methods mirror :class:`minivllm.LLMEngine`'s (``add_request``,
    ``abort_request``, ``step``, ``has_unfinished_requests``), so one driver
    runs a workload on either engine. ``engine_kwargs`` are ``LLMEngine``'s
    scheduler and cache limits; ``observers`` receive every event (through
    :func:`~lifecycle_trace.vllm.attach`, strict: a failing observer raises).
    """

    def __init__(
        self,
        script: TokenScript = filler_script,
        *,
        async_scheduling: bool = False,
        policy: str = "fcfs",
        observers: Iterable[Handler] = (),
        clock: Callable[[], int] | None = None,
        scheduler_cls: type[Any] | None = None,
        engine_id: str = "vllm",
        **engine_kwargs: Any,
    ) -> None:
        self.scheduler = build_scheduler(
            {**engine_kwargs, "async_scheduling": async_scheduling, "policy": policy},
            scheduler_cls=scheduler_cls,
        )
        self.script = script
        self.async_scheduling = async_scheduling
        self.max_model_len: int = self.scheduler.max_model_len
        self.step_index = 0
        self.last_step: VllmEngineStep | None = None
        self.bus: EventBus | None = None
        observers = list(observers)
        if observers:
            kwargs: dict[str, Any] = {"engine_id": engine_id, "strict": True}
            if clock is not None:
                kwargs["clock"] = clock
            self.bus = attach(self.scheduler, observers, **kwargs)
        self._block_hasher = _block_hasher(self.scheduler)
        self._batch_queue: deque[tuple[Any, Any]] = deque()
        self._num_added = 0

    def add_request(
        self,
        prompt_token_ids: Sequence[int],
        sampling_params: SamplingParams | None = None,
        request_id: str | None = None,
        priority: int = 0,
    ) -> str:
        """Queue a request on vLLM's scheduler; nothing changes if validation fails."""
        from vllm.v1.request import Request

        params = sampling_params if sampling_params is not None else SamplingParams()
        if params.stop:
            raise ValueError(
                "stop strings are applied by vLLM's detokenizer, outside the scheduler; "
                f"the vllm engine here runs the scheduler only, got stop={params.stop!r}"
            )
        prompt = list(prompt_token_ids)
        if not prompt or len(prompt) >= self.max_model_len:
            raise ValueError(
                f"prompt must have 1 to {self.max_model_len - 1} tokens (shorter than "
                f"max_model_len), got {len(prompt)}"
            )
        if request_id is None:
            request_id = str(self._num_added)
        if request_id in self.scheduler.requests:
            raise ValueError(f"request_id {request_id!r} is already in use by a live request")
        request = Request(
            request_id=request_id,
            prompt_token_ids=prompt,
            sampling_params=_vllm_params(params, len(prompt), self.max_model_len),
            pooling_params=None,
            # Strictly increasing, so the priority policy breaks ties by arrival order.
            arrival_time=float(self._num_added),
            priority=priority,
            block_hasher=self._block_hasher,
        )
        self._num_added += 1
        self.scheduler.add_request(request)
        return request_id

    def abort_request(self, request_id: str | Iterable[str]) -> None:
        """Abort requests in one ``finish_requests`` call, as vLLM's engine core does."""
        from vllm.v1.request import RequestStatus

        ids = [request_id] if isinstance(request_id, str) else list(request_id)
        self.scheduler.finish_requests(ids, RequestStatus.FINISHED_ABORTED)

    def has_unfinished_requests(self) -> bool:
        """Whether any request is waiting or running."""
        return bool(self.scheduler.has_unfinished_requests())

    def has_work(self) -> bool:
        """Whether vLLM's engine loop would step (requests, unreported finished ids, a batch)."""
        return bool(self.scheduler.has_requests()) or bool(self._batch_queue)

    def step(self) -> VllmEngineStep:
        """One engine step: ``EngineCore.step``, or ``step_with_batch_queue`` when async."""
        if self.async_scheduling:
            result = self._async_step()
            # vLLM's busy loop asks has_work() right after a step; that also
            # closes, in the log, a step that only scheduled.
            self.scheduler.has_requests()
        else:
            result = self._sync_step()
        self.last_step = result
        self.step_index += 1
        return result

    def shutdown(self) -> None:
        """vLLM's scheduler shutdown (ends an open step in the log)."""
        self.scheduler.shutdown()

    def _sync_step(self) -> VllmEngineStep:
        # An idle step (vLLM's engine would not step) still runs an empty
        # schedule, as minivllm's engine counts it, so step numbers line up
        # with a workload's arrival steps on both engines.
        scheduler = self.scheduler
        output = scheduler.schedule()
        scheduler.update_from_output(output, _model_output(scheduler, output, self.script))
        return VllmEngineStep(output, output)

    def _async_step(self) -> VllmEngineStep:
        # Batch queue of 2; the model is still busy whenever the next schedule() runs.
        scheduler = self.scheduler
        batch_queue = self._batch_queue
        scheduled = None
        # Idle (nothing to schedule, nothing in flight): the empty schedule runs
        # anyway, as in the synchronous step.
        if scheduler.has_requests() or not batch_queue:
            scheduled = scheduler.schedule()
            batch_queue.appendleft((scheduled, _model_output(scheduler, scheduled, self.script)))
            if scheduled.total_num_scheduled_tokens > 0 and len(batch_queue) < 2:
                return VllmEngineStep(scheduled, None)
        processed, model_output = batch_queue.pop()
        scheduler.update_from_output(processed, model_output)
        return VllmEngineStep(scheduled, processed)


def workload_script(workload: Workload) -> TokenScript:
    """The workload's model: EOS at ``eos_at``, the stop token at ``stop_at``, else token 7."""
    scripts = {r.id: (r.eos_at, r.stop_at) for r in workload.requests}

    def token(request_id: str, index: int) -> int:
        eos_at, stop_at = scripts.get(request_id, (None, None))
        if index == eos_at:
            return EOS_TOKEN_ID
        if index == stop_at:
            return STOP_TOKEN_ID
        return FILLER_TOKEN_ID

    return token


def run_workload(
    workload: Workload,
    *,
    observers: Iterable[Handler] = (),
    clock: Callable[[], int] | None = None,
    scheduler_cls: type[Any] | None = None,
    engine_id: str = "vllm",
    max_steps: int = 100_000,
) -> Iterator[StepRecord]:
    """Run ``workload`` on vLLM's scheduler; yield each step's record, as minivllm's run does.

    The driver is minivllm's own (:class:`minivllm.workload.WorkloadRun`):
    the same arrivals, aborts (all of a step's in one call, as vLLM's engine
    core does) and end of the run; the engine is a :class:`VllmEngine` with the
    workload's configuration, mode and scripted model. ``observers`` receive
    every event; the scheduler is shut down at the end.
    """
    engine = VllmEngine(
        workload_script(workload),
        observers=observers,
        clock=clock,
        scheduler_cls=scheduler_cls,
        engine_id=engine_id,
        **workload.engine_kwargs,
    )
    run = WorkloadRun(engine, workload, max_steps)  # type: ignore[arg-type]
    try:
        for _ in run:
            yield run.record()
    finally:
        engine.shutdown()
