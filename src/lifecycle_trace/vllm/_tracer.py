"""The project's events from a running vLLM scheduler, found by diffing request state.

vLLM 0.22.1's scheduler has no observer bus, so :class:`SchedulerTracer` sits at
the boundaries of its methods (the tracing scheduler classes call its hooks) and
turns what changed in between into the same events minivllm emits at the line
where it happens: a request's status, counters and blocks are remembered per
request and compared when a hook runs.

Step boundaries are not visible to a scheduler either. A step opens with
``schedule()`` (or with ``update_from_output()`` when vLLM's batch queue runs a
step that only processes an earlier batch) and closes after
``update_from_output()``. Under async scheduling a step may schedule and return
without processing anything; the engine then calls ``has_requests()`` before
anything else happens (its idle check or the next step), and that call closes
the step. A request added while a step is open also closes it: vLLM adds
requests only between steps.

This module reads vLLM objects by attribute only and never imports vLLM, so
it is importable (and type-checked) without it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from collections.abc import Sequence
from types import MappingProxyType
from typing import Any

from minivllm.bus import EventBus
from minivllm.events import BlocksAllocated
from minivllm.events import BlocksCached
from minivllm.events import BlocksFreed
from minivllm.events import CounterUpdated
from minivllm.events import EngineConfigured
from minivllm.events import RequestAdded
from minivllm.events import StatusChanged
from minivllm.events import StepFinished
from minivllm.events import StepStarted
from minivllm.request import RequestStatus

__all__ = ["SchedulerTracer"]

logger = logging.getLogger("lifecycle_trace.vllm")

_RUNNING = RequestStatus.RUNNING


class _Seen:
    """What the log has said so far about one live request."""

    __slots__ = ("cached", "computed", "placeholders", "preemptions", "status", "tokens")

    def __init__(self, num_tokens: int) -> None:
        self.status = RequestStatus.WAITING
        self.computed = 0
        self.tokens = num_tokens
        self.cached = 0
        self.preemptions = 0
        self.placeholders = 0


def _blocks(kv_cache_manager: Any, request_id: str) -> Sequence[Any]:
    """The blocks ``request_id`` holds in the first (for a plain decoder, the only) group."""
    manager = kv_cache_manager.coordinator.single_type_managers[0]
    return manager.req_to_blocks.get(request_id, ())  # type: ignore[no-any-return]


def _block_hash_value(block_hash: bytes) -> int:
    """A vLLM block hash (bytes) as the log's signed 64-bit integer: its first 8 bytes.

    The log only needs a hash to tell which cached block a prefix hit found, so
    any fixed projection serves; a vLLM log's hashes are never compared with
    minivllm's, which hashes blocks its own way.
    """
    return int.from_bytes(block_hash[:8], "big", signed=True)


def _first_group_len(blocks: Any) -> int:
    """Blocks in the first group of a vLLM ``KVCacheBlocks`` (0 for None)."""
    if blocks is None:
        return 0
    return len(blocks.blocks[0]) if blocks.blocks else 0


class SchedulerTracer:
    """Emits a vLLM scheduler's request lifecycle on ``bus`` as minivllm's events.

    The tracing scheduler classes call the ``on_*`` hooks around vLLM's own
    methods; :meth:`install_kv_hooks` wraps the KV cache manager's
    ``allocate_slots`` and ``free`` on the instance. ``engine_id`` names the
    engine in the log.
    """

    def __init__(
        self, scheduler: Any, bus: EventBus, engine_id: str = "vllm", strict: bool = False
    ) -> None:
        self.scheduler = scheduler
        self.bus = bus
        self.engine_id = engine_id
        self.strict = strict
        self.active = True
        self._seen: dict[str, _Seen] = {}
        self._announced = False
        self._step_open = False
        self._step_scheduled: dict[str, int] = {}
        self._step_preempted: tuple[str, ...] = ()
        self._step_finished: list[str] = []
        self._in_update = False
        # Requests given KV slots while waiting: admitted, most likely, once
        # the scheduler's loop moves on (it sets the status after allocating).
        self._admitting: list[Any] = []
        # Blocks vLLM cached inside the allocate_slots call in progress (else None).
        self._caching: list[list[Any]] | None = None

    def run_hook(self, hook: Callable[..., None], *args: Any) -> None:
        """Run one hook unless tracing is off; a failure raises (strict) or switches it off."""
        if not self.active:
            return
        try:
            hook(*args)
        except Exception:
            if self.strict:
                raise
            self.active = False
            logger.exception("lifecycle tracing failed; it is off for this scheduler from now on")

    # -- set-up ---------------------------------------------------------------

    def install_kv_hooks(self) -> None:
        """Wrap the KV cache manager's ``allocate_slots`` and ``free`` on its instance."""
        kv = self.scheduler.kv_cache_manager
        allocate = kv.allocate_slots
        free = kv.free
        tracer = self

        def allocate_slots(request: Any, *args: Any, **kwargs: Any) -> Any:
            tracer.run_hook(tracer.flush_admissions)
            before = len(_blocks(kv, request.request_id))
            # vLLM caches the request's full blocks inside allocate_slots; the log
            # tells of the allocation first, then of the caching, as minivllm does.
            tracer._caching = []
            try:
                result = allocate(request, *args, **kwargs)
            finally:
                caching, tracer._caching = tracer._caching, None
            if result is not None:
                computed = kwargs.get("new_computed_blocks")
                tracer.run_hook(tracer._on_allocated, request, before, computed)
            for cached in caching:
                tracer.run_hook(tracer._on_cached, request.request_id, cached)
            return result

        def free_blocks(request: Any) -> None:
            held = [b.block_id for b in _blocks(kv, request.request_id)]
            free(request)
            if held:
                tracer.run_hook(tracer._on_freed, request.request_id, held)

        pool = kv.block_pool
        cache_full_blocks = pool.cache_full_blocks

        def cache_blocks(
            request: Any,
            blocks: list[Any],
            num_cached_blocks: int,
            num_full_blocks: int,
            *args: Any,
            **kwargs: Any,
        ) -> None:
            cache_full_blocks(request, blocks, num_cached_blocks, num_full_blocks, *args, **kwargs)
            cached = [
                b for b in blocks[num_cached_blocks:num_full_blocks] if b.block_hash is not None
            ]
            if not cached:
                return
            if tracer._caching is not None:
                tracer._caching.append(cached)
            else:
                tracer.run_hook(tracer._on_cached, request.request_id, cached)

        kv.allocate_slots = allocate_slots
        kv.free = free_blocks
        pool.cache_full_blocks = cache_blocks

    def announce(self) -> None:
        """Emit EngineConfigured once, before anything else (as minivllm does, lazily)."""
        if self._announced:
            return
        self._announced = True
        s = self.scheduler
        config = s.scheduler_config
        self.bus.publish(
            EngineConfigured,
            engine_id=self.engine_id,
            max_num_seqs=s.max_num_running_reqs,
            max_num_batched_tokens=s.max_num_scheduled_tokens,
            max_model_len=s.max_model_len,
            block_size=s.block_size,
            num_gpu_blocks=s.kv_cache_manager.block_pool.num_gpu_blocks,
            enable_chunked_prefill=bool(config.enable_chunked_prefill),
            enable_prefix_caching=bool(s.cache_config.enable_prefix_caching),
            long_prefill_token_threshold=int(config.long_prefill_token_threshold),
            policy=str(s.policy.value),
            async_scheduling=bool(config.async_scheduling),
            scheduler_reserve_full_isl=bool(s.scheduler_reserve_full_isl),
            engine_name="vllm",
        )

    # -- steps ----------------------------------------------------------------

    def _open_step(self) -> None:
        s = self.scheduler
        self._step_open = True
        self._step_scheduled = {}
        self._step_preempted = ()
        self._step_finished = []
        num_running, num_waiting = s.get_request_counts()
        self.bus.publish(StepStarted, num_running=num_running, num_waiting=num_waiting)

    def close_step(self) -> None:
        """End the open step (if any) with its StepFinished; later events carry the next step."""
        if not self._step_open:
            return
        self._step_open = False
        s = self.scheduler
        kv = s.kv_cache_manager
        num_running, num_waiting = s.get_request_counts()
        free = kv.block_pool.get_num_free_blocks()
        # Publishing StepFinished moves the bus on to the next step.
        self.bus.publish(
            StepFinished,
            num_scheduled_tokens=MappingProxyType(dict(self._step_scheduled)),
            preempted_req_ids=self._step_preempted,
            finished_req_ids=tuple(self._step_finished),
            num_running=num_running,
            num_waiting=num_waiting,
            num_free_blocks=free,
            num_used_blocks=kv.block_pool.num_gpu_blocks - 1 - free,
        )

    # -- hooks ----------------------------------------------------------------

    def on_has_requests(self) -> None:
        """The engine asks whether to step: a step that only scheduled has returned."""
        self.close_step()

    def before_schedule(self) -> None:
        """A step begins with ``schedule()``."""
        self.announce()
        self.close_step()
        self._open_step()

    def after_schedule(self, scheduler_output: Any) -> None:
        """Remember what this step scheduled and preempted for its StepFinished."""
        self.flush_admissions()
        self._step_scheduled = dict(scheduler_output.num_scheduled_tokens)
        self._step_preempted = tuple(sorted(scheduler_output.preempted_req_ids))

    def before_update_after_schedule(self) -> None:
        """Admissions are complete once ``_update_after_schedule`` runs."""
        self.flush_admissions()

    def after_update_after_schedule(self, scheduler_output: Any) -> None:
        """The schedule-time advance of ``num_computed_tokens``."""
        requests = self.scheduler.requests
        for req_id in scheduler_output.num_scheduled_tokens:
            request = requests.get(req_id)
            if request is not None:
                self._sync_counters(request)

    def before_preempt(self, request: Any) -> None:
        """Nothing to remember: the counters before preemption are the ones last emitted."""
        self.flush_admissions()

    def after_preempt(self, request: Any) -> None:
        """RUNNING -> PREEMPTED with the counters as they stood, then the resets."""
        seen = self._seen.get(request.request_id)
        if seen is None:
            return
        self._emit_status(request, seen, computed=seen.computed)
        self._sync_counters(request)

    def before_update(self) -> None:
        """``update_from_output()`` either continues the open step or is a step of its own."""
        self.announce()
        if not self._step_open:
            self._open_step()
        self._in_update = True

    def after_tokens(self, request: Any) -> None:
        """Tokens were appended (``_update_request_with_output``) and placeholders used up."""
        self._sync_tokens(request)
        seen = self._seen.get(request.request_id)
        if seen is not None:
            self._set_counter(
                request, seen, "num_output_placeholders", request.num_output_placeholders
            )

    def after_update(self, scheduler_output: Any) -> None:
        """Catch any counter change no finer hook saw, then end the step."""
        self._in_update = False
        requests = self.scheduler.requests
        for req_id in scheduler_output.num_scheduled_tokens:
            request = requests.get(req_id)
            if request is not None and req_id in self._seen:
                self._sync_tokens(request)
                self._sync_counters(request)
        self.close_step()

    def before_free(self, request: Any) -> None:
        """A request finished (stop rule or abort): its status change, then its blocks."""
        self.announce()
        seen = self._seen.get(request.request_id)
        if seen is None:
            return
        self._sync_tokens(request)
        self._emit_status(request, seen, computed=request.num_computed_tokens)
        if self._in_update:
            self._step_finished.append(request.request_id)

    def after_free(self, request: Any) -> None:
        """Forget a finished request once vLLM has let it go."""
        if request.request_id not in self.scheduler.requests:
            self._seen.pop(request.request_id, None)

    def after_add(self, request: Any, is_new: bool) -> None:
        """RequestAdded for a request vLLM queued (a streaming update of a live one is not)."""
        self.announce()
        self.close_step()  # vLLM adds requests only between steps
        if not is_new:
            return
        params = request.sampling_params
        request_id = request.request_id
        self._seen[request_id] = _Seen(request.num_tokens)
        self.bus.publish(
            RequestAdded,
            request_id=request_id,
            num_prompt_tokens=request.num_prompt_tokens,
            max_tokens=request.max_tokens,
            min_tokens=params.min_tokens,
            stop_token_ids=tuple(params.stop_token_ids or ()),
            ignore_eos=bool(params.ignore_eos),
            priority=request.priority,
            temperature=float(params.temperature),
            top_p=float(params.top_p),
            n=params.n,
        )

    def close(self) -> None:
        """End the open step, if any (at shutdown)."""
        self.close_step()

    # -- diffing --------------------------------------------------------------

    def _on_freed(self, request_id: str, block_ids: list[int]) -> None:
        self.bus.publish(
            BlocksFreed,
            request_id=request_id,
            num_blocks=len(block_ids),
            block_ids=tuple(block_ids),
        )

    def _on_cached(self, request_id: str, blocks: list[Any]) -> None:
        self.bus.publish(
            BlocksCached,
            request_id=request_id,
            block_ids=tuple(b.block_id for b in blocks),
            block_hashes=tuple(_block_hash_value(b.block_hash) for b in blocks),
        )

    def _on_allocated(self, request: Any, before: int, new_computed_blocks: Any) -> None:
        kv = self.scheduler.kv_cache_manager
        # vLLM appends the prefix-cache hits to the block table first, then fresh blocks.
        added = _blocks(kv, request.request_id)[before:]
        cached = added[: _first_group_len(new_computed_blocks)]
        fresh = added[len(cached) :]
        if added:
            self.bus.publish(
                BlocksAllocated,
                request_id=request.request_id,
                num_new_blocks=len(fresh),
                num_cached_blocks=len(cached),
                block_ids=tuple(b.block_id for b in fresh),
                cached_block_ids=tuple(b.block_id for b in cached),
                cached_block_hashes=tuple(_block_hash_value(b.block_hash) for b in cached),
            )
        # vLLM's statuses are another enum: compare by name, never by value.
        if request.status.name != "RUNNING":
            self._admitting.append(request)

    def flush_admissions(self) -> None:
        """Emit the status change and counters of requests admitted since the last hook."""
        if not self._admitting:
            return
        admitting, self._admitting = self._admitting, []
        for request in admitting:
            seen = self._seen.get(request.request_id)
            if seen is None or _status(request.status) == seen.status:
                continue
            from_scratch = seen.computed == 0
            self._emit_status(request, seen, computed=seen.computed)
            self._sync_counters(request)
            if from_scratch and seen.status == _RUNNING:
                # Tokens served by the prefix cache at an admission from scratch.
                self._set_counter(request, seen, "num_cached_tokens", request.num_computed_tokens)

    def _emit_status(self, request: Any, seen: _Seen, computed: int) -> None:
        new = _status(request.status)
        if new is None or new == seen.status:
            return
        old, seen.status = seen.status, new
        num_tokens = len(request._all_token_ids)
        self.bus.publish(
            StatusChanged,
            request_id=request.request_id,
            old_status=old,
            new_status=new,
            num_computed_tokens=computed,
            num_tokens=num_tokens,
            num_output_tokens=num_tokens - request.num_prompt_tokens,
            stop_reason=request.stop_reason,
        )

    def _sync_tokens(self, request: Any) -> None:
        seen = self._seen.get(request.request_id)
        if seen is None:
            return
        tokens = request._all_token_ids
        # One event per appended token, with the token, as minivllm emits them.
        while seen.tokens < len(tokens):
            seen.tokens += 1
            self.bus.publish(
                CounterUpdated,
                request_id=request.request_id,
                counter="num_tokens",
                old=seen.tokens - 1,
                new=seen.tokens,
                token_id=tokens[seen.tokens - 1],
            )

    def _sync_counters(self, request: Any) -> None:
        seen = self._seen.get(request.request_id)
        if seen is None:
            return
        self._set_counter(request, seen, "num_computed_tokens", request.num_computed_tokens)
        self._set_counter(request, seen, "num_preemptions", request.num_preemptions)
        self._set_counter(request, seen, "num_output_placeholders", request.num_output_placeholders)

    def _set_counter(self, request: Any, seen: _Seen, counter: str, value: int) -> None:
        attr = _SEEN_ATTR[counter]
        old = getattr(seen, attr)
        if old != value:
            setattr(seen, attr, value)
            self.bus.publish(
                CounterUpdated, request_id=request.request_id, counter=counter, old=old, new=value
            )


_SEEN_ATTR = {
    "num_output_placeholders": "placeholders",
    "num_computed_tokens": "computed",
    "num_preemptions": "preemptions",
    "num_cached_tokens": "cached",
}

_warned: set[str] = set()


def _status(vllm_status: Any) -> RequestStatus | None:
    """minivllm's status of the same name, or None (logged once) for one it does not have."""
    name = vllm_status.name
    status = RequestStatus.__members__.get(name)
    if status is None and name not in _warned:
        _warned.add(name)
        logger.warning("vLLM status %s has no counterpart in the event log; not recorded", name)
    return status
