"""The scheduler: who runs this step and with how many tokens (vLLM's ``Scheduler``).

Synchronous, first come first served, one step at a time, as
``vllm/v1/core/sched/scheduler.py`` in vLLM 0.22.1. Every status change and
counter change is emitted on the bus at the line where it happens.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from typing import TYPE_CHECKING

from minivllm.bus import EventBus
from minivllm.core.kv_cache_manager import KVCacheManager
from minivllm.core.sched.output import SchedulerOutput
from minivllm.core.sched.utils import check_stop
from minivllm.events import CounterUpdated, RequestAdded, StatusChanged
from minivllm.request import Request, RequestStatus

if TYPE_CHECKING:
    from minivllm.config import EngineConfig
    from minivllm.model_executor.runner import ModelRunnerOutput

_RUNNING = RequestStatus.RUNNING
_WAITING = RequestStatus.WAITING
_PREEMPTED = RequestStatus.PREEMPTED


class Scheduler:
    """Owns the ``waiting`` and ``running`` queues and every request's counters."""

    def __init__(self, config: EngineConfig, bus: EventBus | None = None) -> None:
        self.config = config
        self.max_num_running_reqs = config.max_num_seqs
        self.max_num_scheduled_tokens = config.max_num_batched_tokens
        self.max_model_len = config.max_model_len
        self.long_prefill_token_threshold = config.long_prefill_token_threshold
        self.enable_chunked_prefill = config.enable_chunked_prefill
        self.scheduler_reserve_full_isl = config.scheduler_reserve_full_isl
        self.bus = bus if bus is not None else EventBus()
        self.kv_cache_manager = KVCacheManager(
            num_gpu_blocks=config.num_gpu_blocks,
            block_size=config.block_size,
            max_model_len=config.max_model_len,
            enable_caching=config.enable_prefix_caching,
            bus=self.bus,
        )
        # The unfinished requests, by id (finished ones leave, as in vLLM).
        self.requests: dict[str, Request] = {}
        self.waiting: deque[Request] = deque()
        self.running: list[Request] = []
        # Finished since the last schedule(); handed to the model runner so it
        # can drop their state.
        self.finished_req_ids: set[str] = set()
        self._on_added = self.bus.channel(RequestAdded)
        self._on_status = self.bus.channel(StatusChanged)
        self._on_counter = self.bus.channel(CounterUpdated)

    # -- events -------------------------------------------------------------

    def _emit_status(self, request: Request, old: RequestStatus) -> None:
        self._on_status.emit(
            request.request_id,
            old,
            request.status,
            request.num_computed_tokens,
            len(request._all_token_ids),
            len(request._output_token_ids),
            request.stop_reason,
        )

    # -- requests in and out ------------------------------------------------

    def add_request(self, request: Request) -> None:
        """Queue a new request at the back of ``waiting``."""
        if request.request_id in self.requests:
            raise ValueError(f"request_id {request.request_id!r} is already in use")
        self.waiting.append(request)
        self.requests[request.request_id] = request
        if self._on_added.handlers:
            p = request.sampling_params
            self._on_added.emit(
                request.request_id,
                request.num_prompt_tokens,
                request.max_tokens,
                p.min_tokens,
                p.stop_token_ids,
                p.ignore_eos,
            )

    def finish_requests(
        self, request_ids: str | Iterable[str], finished_status: RequestStatus
    ) -> None:
        """Finish requests from outside (abort); unknown or finished ids are ignored."""
        if not RequestStatus.is_finished(finished_status):
            raise ValueError(
                f"finished_status must be a FINISHED_* status, got {finished_status!r}"
            )
        ids = (request_ids,) if isinstance(request_ids, str) else tuple(dict.fromkeys(request_ids))
        for request_id in ids:
            request = self.requests.get(request_id)
            if request is None:
                continue
            if request.status == _RUNNING:
                self.running.remove(request)
            else:
                self.waiting.remove(request)
            old = request.status
            request.status = finished_status
            if self._on_status.handlers:
                self._emit_status(request, old)
            self._free_request(request)

    def _free_request(self, request: Request) -> None:
        self.kv_cache_manager.free(request)
        self.finished_req_ids.add(request.request_id)
        del self.requests[request.request_id]

    def has_unfinished_requests(self) -> bool:
        """Whether any request is waiting or running."""
        return bool(self.requests)

    def get_num_unfinished_requests(self) -> int:
        """Waiting plus running requests."""
        return len(self.requests)

    def get_request_counts(self) -> tuple[int, int]:
        """``(num_running, num_waiting)``."""
        return len(self.running), len(self.waiting)

    # -- the step -----------------------------------------------------------

    def schedule(self) -> SchedulerOutput:
        """Decide this step's batch: running requests first, then admissions."""
        scheduled_new_reqs: list[Request] = []
        scheduled_resumed_reqs: list[Request] = []
        scheduled_running_reqs: list[Request] = []
        preempted_reqs: list[Request] = []
        num_scheduled_tokens: dict[str, int] = {}
        token_budget = self.max_num_scheduled_tokens
        threshold = self.long_prefill_token_threshold
        max_model_len = self.max_model_len
        kv = self.kv_cache_manager
        running = self.running

        # First, the RUNNING requests, in order.
        req_index = 0
        while req_index < len(running) and token_budget > 0:
            request = running[req_index]
            num_new_tokens = len(request._all_token_ids) - request.num_computed_tokens
            if 0 < threshold < num_new_tokens:
                num_new_tokens = threshold
            if num_new_tokens > token_budget:
                num_new_tokens = token_budget
            # Never compute a position at or past max_model_len.
            limit = max_model_len - 1 - request.num_computed_tokens
            if num_new_tokens > limit:
                num_new_tokens = limit
            if num_new_tokens <= 0:
                req_index += 1
                continue

            while True:
                new_blocks = kv.allocate_slots(request, num_new_tokens)
                if new_blocks is not None:
                    break
                # Out of blocks: preempt the lowest-priority (last) running request.
                preempted_req = running.pop()
                self._preempt_request(preempted_req)
                preempted_reqs.append(preempted_req)
                if preempted_req is request:
                    break
            if new_blocks is None:
                break

            scheduled_running_reqs.append(request)
            num_scheduled_tokens[request.request_id] = num_new_tokens
            token_budget -= num_new_tokens
            req_index += 1

        # Next, the WAITING requests, only if nothing was preempted this step.
        if not preempted_reqs:
            waiting = self.waiting
            while waiting and token_budget > 0:
                if len(running) == self.max_num_running_reqs:
                    break
                request = waiting[0]
                if request.num_computed_tokens == 0:
                    computed_blocks, num_new_computed_tokens = kv.get_computed_blocks(request)
                    num_computed_tokens = num_new_computed_tokens
                else:
                    computed_blocks, num_new_computed_tokens = [], 0
                    num_computed_tokens = request.num_computed_tokens

                num_new_tokens = len(request._all_token_ids) - num_computed_tokens
                if 0 < threshold < num_new_tokens:
                    num_new_tokens = threshold
                if not self.enable_chunked_prefill and num_new_tokens > token_budget:
                    break
                num_new_tokens = min(num_new_tokens, token_budget)

                new_blocks = kv.allocate_slots(
                    request,
                    num_new_tokens,
                    num_new_computed_tokens=num_new_computed_tokens,
                    new_computed_blocks=computed_blocks,
                    full_sequence_must_fit=self.scheduler_reserve_full_isl,
                )
                if new_blocks is None:
                    break

                waiting.popleft()
                running.append(request)
                old_status = request.status
                if old_status == _WAITING:
                    scheduled_new_reqs.append(request)
                else:
                    scheduled_resumed_reqs.append(request)
                num_scheduled_tokens[request.request_id] = num_new_tokens
                token_budget -= num_new_tokens
                request.status = _RUNNING
                if self._on_status.handlers:
                    self._emit_status(request, old_status)
                self._set_admitted_counters(request, num_computed_tokens, num_new_computed_tokens)

        total_num_scheduled_tokens = self.max_num_scheduled_tokens - token_budget
        scheduler_output = SchedulerOutput(
            scheduled_new_reqs=scheduled_new_reqs,
            scheduled_resumed_reqs=scheduled_resumed_reqs,
            scheduled_running_reqs=scheduled_running_reqs,
            num_scheduled_tokens=num_scheduled_tokens,
            total_num_scheduled_tokens=total_num_scheduled_tokens,
            preempted_req_ids={r.request_id for r in preempted_reqs},
            finished_req_ids=self.finished_req_ids,
            req_to_blocks=kv.req_to_blocks,
        )
        self._update_after_schedule(scheduler_output)
        return scheduler_output

    def _set_admitted_counters(
        self, request: Request, num_computed_tokens: int, num_cache_hit_tokens: int
    ) -> None:
        old = request.num_computed_tokens
        request.num_computed_tokens = num_computed_tokens
        if old != num_computed_tokens and self._on_counter.handlers:
            self._on_counter.emit(
                request.request_id, "num_computed_tokens", old, num_computed_tokens
            )
        # Tokens served by the prefix cache at the last admission from scratch.
        if old == 0 and request.num_cached_tokens != num_cache_hit_tokens:
            old_cached = request.num_cached_tokens
            request.num_cached_tokens = num_cache_hit_tokens
            if self._on_counter.handlers:
                self._on_counter.emit(
                    request.request_id,
                    "num_cached_tokens",
                    old_cached,
                    num_cache_hit_tokens,
                )

    def _preempt_request(self, request: Request) -> None:
        """Evict a running request: free its blocks and send it to the front of ``waiting``.

        The caller has already removed it from ``running``. Its output tokens are
        kept; on resume it recomputes prompt plus outputs.
        """
        self.kv_cache_manager.free(request)
        request.status = _PREEMPTED
        if self._on_status.handlers:
            self._emit_status(request, _RUNNING)  # counters as they stood
        old_computed = request.num_computed_tokens
        request.num_computed_tokens = 0
        request.num_preemptions += 1
        if self._on_counter.handlers:
            emit, rid = self._on_counter.emit, request.request_id
            emit(rid, "num_computed_tokens", old_computed, 0)
            emit(rid, "num_preemptions", request.num_preemptions - 1, request.num_preemptions)
        self.waiting.appendleft(request)

    def _update_after_schedule(self, scheduler_output: SchedulerOutput) -> None:
        # Advance num_computed_tokens at schedule time, as vLLM does, so the
        # next schedule() already sees this step's chunk as computed.
        requests = self.requests
        if self._on_counter.handlers:
            emit = self._on_counter.emit
            for req_id, n in scheduler_output.num_scheduled_tokens.items():
                request = requests[req_id]
                old = request.num_computed_tokens
                request.num_computed_tokens = old + n
                emit(req_id, "num_computed_tokens", old, old + n)
        else:
            for req_id, n in scheduler_output.num_scheduled_tokens.items():
                requests[req_id].num_computed_tokens += n
        # A new set: the old one travels with the scheduler output.
        self.finished_req_ids = set()

    def update_from_output(
        self, scheduler_output: SchedulerOutput, model_runner_output: ModelRunnerOutput
    ) -> list[Request]:
        """Append sampled tokens, apply stop rules, free finished requests.

        Returns the requests that received a token this step (finished ones included).
        """
        sampled = model_runner_output.sampled_token_ids
        index = dict(zip(model_runner_output.req_ids, range(len(sampled)), strict=True))
        requests = self.requests
        max_model_len = self.max_model_len
        on_counter = self._on_counter.handlers
        outputs: list[Request] = []
        stopped: list[Request] = []
        # vLLM's order (the scheduled order), not the runner's: it decides the
        # order in which finished requests free their blocks.
        for req_id in scheduler_output.num_scheduled_tokens:
            request = requests.get(req_id)
            if request is None or request.status > _PREEMPTED:
                continue
            new_token_ids = sampled[index[req_id]]
            if not new_token_ids:
                continue  # still in the middle of a chunked prefill
            for token_id in new_token_ids:
                all_token_ids = request._all_token_ids
                request._output_token_ids.append(token_id)
                all_token_ids.append(token_id)
                if on_counter:
                    n = len(all_token_ids)
                    self._on_counter.emit(req_id, "num_tokens", n - 1, n)
                if check_stop(request, max_model_len):
                    stopped.append(request)
                    break
            outputs.append(request)

        if stopped:
            stopped_set = set(stopped)
            self.running = [r for r in self.running if r not in stopped_set]
            for request in stopped:
                if self._on_status.handlers:
                    self._emit_status(request, _RUNNING)
                self._free_request(request)
        return outputs

    def validate_runner_output(
        self,
        scheduler_output: SchedulerOutput,
        model_runner_output: ModelRunnerOutput,
        vocab_size: int,
    ) -> None:
        """Refuse a runner output that does not match what was scheduled, before it is applied."""
        req_ids = model_runner_output.req_ids
        sampled = model_runner_output.sampled_token_ids
        scheduled = scheduler_output.num_scheduled_tokens
        if len(req_ids) != len(sampled):
            raise ValueError(
                f"model runner output: req_ids has {len(req_ids)} entries but "
                f"sampled_token_ids has {len(sampled)}"
            )
        if set(req_ids) != scheduled.keys() or len(req_ids) != len(scheduled):
            raise ValueError(
                f"model runner output: req_ids {sorted(req_ids)!r} do not match the "
                f"scheduled requests {sorted(scheduled)!r}"
            )
        requests = self.requests
        for req_id, tokens in zip(req_ids, sampled, strict=True):
            request = requests[req_id]
            if request.num_computed_tokens < len(request._all_token_ids):
                if tokens:
                    raise ValueError(
                        f"model runner output: request {req_id!r} is mid-prefill and must get "
                        f"[], got {tokens!r}"
                    )
            elif len(tokens) != 1 or type(tokens[0]) is not int or not 0 <= tokens[0] < vocab_size:
                raise ValueError(
                    f"model runner output: request {req_id!r} must get exactly one token id "
                    f"in the vocabulary [0, {vocab_size}), got {tokens!r}"
                )

    def revert_schedule(self, scheduler_output: SchedulerOutput) -> None:
        """Undo the schedule-time advance of a step whose model output was refused.

        The requests keep their KV slots and run again next step.
        """
        requests = self.requests
        on_counter = self._on_counter.handlers
        for req_id, n in scheduler_output.num_scheduled_tokens.items():
            request = requests[req_id]
            old = request.num_computed_tokens
            request.num_computed_tokens = old - n
            if on_counter:
                self._on_counter.emit(req_id, "num_computed_tokens", old, old - n)
