"""The scheduler: who runs this step and with how many tokens (vLLM's ``Scheduler``).

``vllm/v1/core/sched/scheduler.py`` of vLLM 0.22.1, reduced to what a
text-only model on one KV cache group needs: no encoder inputs, speculative
decoding, KV connectors, LoRA, structured output or pausing. vLLM's comments
and asserts are kept where its code is. Every status and counter change is
also emitted on the bus, through the ``_emit_*`` helpers (a reader following
vLLM can skip every line that calls one).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from minivllm.bus import EventBus
from minivllm.core.journal import Journal
from minivllm.core.kv_cache_manager import KVCacheManager
from minivllm.core.sched.interface import SchedulerInterface
from minivllm.core.sched.output import SchedulerOutput
from minivllm.core.sched.request_queue import RequestQueue
from minivllm.core.sched.request_queue import SchedulingPolicy
from minivllm.core.sched.request_queue import create_request_queue
from minivllm.core.sched.utils import check_stop
from minivllm.core.sched.utils import remove_all
from minivllm.events import CounterUpdated
from minivllm.events import RequestAdded
from minivllm.events import StatusChanged
from minivllm.request import Request
from minivllm.request import RequestStatus

if TYPE_CHECKING:
    from minivllm.config import EngineConfig
    from minivllm.model_executor.runner import ModelRunnerOutput

# Looking an enum member up on its class costs about 150 ns in Python 3.11;
# the loops that run for every request in every step use these instead.
_RUNNING = RequestStatus.RUNNING
_PREEMPTED = RequestStatus.PREEMPTED


def _refill(queue: RequestQueue, requests: list[Request]) -> None:
    """Put ``queue`` back to ``requests``, in their order (the undo of a removal)."""
    queue.remove_requests(list(queue))
    for request in requests:
        queue.add_request(request)


def _unadvance(
    scheduler_output: SchedulerOutput, requests: dict[str, Request], flipped: list[Request]
) -> None:
    """Undo ``_update_after_schedule``'s advance of ``num_computed_tokens``."""
    for req_id, n in scheduler_output.num_scheduled_tokens.items():
        requests[req_id].num_computed_tokens -= n
    for request in flipped:
        request.is_prefill_chunk = not request.is_prefill_chunk


def _unstop(request: Request, status: RequestStatus) -> None:
    """Undo a stop rule's finish (a live request has no stop reason)."""
    request.status = status
    request.stop_reason = None


class Scheduler(SchedulerInterface):
    """Owns the ``waiting`` and ``running`` queues and every request's counters."""

    def __init__(self, config: EngineConfig, bus: EventBus | None = None) -> None:
        self.config = config
        # Scheduling constraints.
        self.max_num_running_reqs = config.max_num_seqs
        self.max_num_scheduled_tokens = config.max_num_batched_tokens
        self.max_model_len = config.max_model_len
        self.long_prefill_token_threshold = config.long_prefill_token_threshold
        self.enable_chunked_prefill = config.enable_chunked_prefill
        self.scheduler_reserve_full_isl = config.scheduler_reserve_full_isl
        self.bus = bus if bus is not None else EventBus()
        # Notes on how to undo the step in progress, so a failed step changes nothing.
        self.journal = Journal()

        # req_id -> Request
        self.requests: dict[str, Request] = {}
        # Scheduling policy
        self.policy = SchedulingPolicy(config.policy)
        # Priority queues for requests.
        self.waiting = create_request_queue(self.policy)
        self.running: list[Request] = []

        # The request IDs that are finished in between the previous and the
        # current steps. This is used to notify the workers about the finished
        # requests so that they can free the cached states for those requests.
        # This is flushed at the end of each scheduling step.
        self.finished_req_ids: set[str] = set()

        # Create the KV cache manager.
        self.kv_cache_manager = KVCacheManager(
            num_gpu_blocks=config.num_gpu_blocks,
            block_size=config.block_size,
            max_model_len=config.max_model_len,
            enable_caching=config.enable_prefix_caching,
            bus=self.bus,
            journal=self.journal,
        )

        self._on_added = self.bus.channel(RequestAdded)
        self._on_status = self.bus.channel(StatusChanged)
        self._on_counter = self.bus.channel(CounterUpdated)

    def schedule(self) -> SchedulerOutput:
        """Decide this step's batch: running requests first, then admissions from ``waiting``."""
        # NOTE(woosuk) on the scheduling algorithm:
        # There's no "decoding phase" nor "prefill phase" in the scheduler.
        # Each request just has the num_computed_tokens and
        # num_tokens_with_spec. num_tokens_with_spec =
        # len(prompt_token_ids) + len(output_token_ids) + len(spec_token_ids).
        # At each step, the scheduler tries to assign tokens to the requests
        # so that each request's num_computed_tokens can catch up its
        # num_tokens_with_spec. This is general enough to cover
        # chunked prefills, prefix caching, speculative decoding,
        # and the "jump decoding" optimization in the future.

        scheduled_new_reqs: list[Request] = []
        scheduled_resumed_reqs: list[Request] = []
        scheduled_running_reqs: list[Request] = []
        preempted_reqs: list[Request] = []

        num_scheduled_tokens: dict[str, int] = {}
        token_budget = self.max_num_scheduled_tokens
        # Locals: this loop runs for every running request in every step.
        threshold = self.long_prefill_token_threshold
        max_model_len = self.max_model_len
        kv_cache_manager = self.kv_cache_manager
        running = self.running

        # First, schedule the RUNNING requests.
        req_index = 0
        while req_index < len(running) and token_budget > 0:
            request = running[req_index]

            if (
                request.num_output_placeholders > 0
                # This is (num_computed_tokens + 1) - (num_output_placeholders - 1).
                # Since output placeholders are also included in the computed tokens
                # count, we subtract (num_output_placeholders - 1) to remove any draft
                # tokens, so that we can be sure no further steps are needed even if
                # they are all rejected.
                and request.num_computed_tokens + 2 - request.num_output_placeholders
                >= request.num_prompt_tokens + request.max_tokens
            ):
                # Async scheduling: Avoid scheduling an extra step when we are sure that
                # the previous step has reached request.max_tokens. We don't schedule
                # partial draft tokens since this prevents uniform decode optimizations.
                req_index += 1
                continue

            num_new_tokens = (
                request.num_tokens + request.num_output_placeholders - request.num_computed_tokens
            )
            if 0 < threshold < num_new_tokens:
                num_new_tokens = threshold
            if num_new_tokens > token_budget:
                num_new_tokens = token_budget

            # Make sure the input position does not exceed the max model len.
            # This is necessary when using spec decoding.
            if num_new_tokens > max_model_len - 1 - request.num_computed_tokens:
                num_new_tokens = max_model_len - 1 - request.num_computed_tokens

            if num_new_tokens == 0:
                # The request cannot be scheduled because one of the following
                # reasons:
                # 1. No new tokens to schedule. This may happen when
                #    (1) PP>1 and we have already scheduled all prompt tokens
                #    but they are not finished yet.
                #    (2) Async scheduling and the request has reached to either
                #    its max_total_tokens or max_model_len.
                # NOTE(woosuk): Here, by doing `continue` instead of `break`,
                # we do not strictly follow the FCFS scheduling policy and
                # allow the lower-priority requests to be scheduled.
                req_index += 1
                continue

            # Schedule newly needed KV blocks for the request.
            while True:
                new_blocks = kv_cache_manager.allocate_slots(request, num_new_tokens)

                if new_blocks is not None:
                    # The request can be scheduled.
                    break

                # The request cannot be scheduled.
                # Preempt the lowest-priority request.
                if self.policy == SchedulingPolicy.PRIORITY:
                    preempted_req = max(
                        running,
                        key=lambda r: (r.priority, r.arrival_time),
                    )
                    running.remove(preempted_req)
                    if preempted_req in scheduled_running_reqs:
                        preempted_req_id = preempted_req.request_id
                        scheduled_running_reqs.remove(preempted_req)
                        token_budget += num_scheduled_tokens.pop(preempted_req_id)
                        req_index -= 1
                else:
                    preempted_req = running.pop()

                self._preempt_request(preempted_req)
                preempted_reqs.append(preempted_req)
                if preempted_req == request:
                    # No more request to preempt. Cannot schedule this request.
                    break

            if new_blocks is None:
                # Cannot schedule this request.
                break

            # Schedule the request.
            scheduled_running_reqs.append(request)
            num_scheduled_tokens[request.request_id] = num_new_tokens
            token_budget -= num_new_tokens
            req_index += 1

        # Next, schedule the WAITING requests.
        if not preempted_reqs:
            while self.waiting and token_budget > 0:
                if len(running) == self.max_num_running_reqs:
                    break

                request = self.waiting.peek_request()

                # Get already-cached tokens. minivllm has no KV connector, so a
                # waiting request has computed nothing (vLLM's other branch is
                # for requests whose remote KV load finished).
                assert request.num_computed_tokens == 0
                # Get locally-cached tokens.
                new_computed_blocks, num_new_local_computed_tokens = (
                    kv_cache_manager.get_computed_blocks(request)
                )
                # Total computed tokens (local + external).
                num_computed_tokens = num_new_local_computed_tokens
                assert num_computed_tokens <= request.num_tokens

                # Number of tokens to be scheduled.
                # We use `request.num_tokens` instead of
                # `request.num_prompt_tokens` to consider the resumed
                # requests, which have output tokens.
                num_new_tokens = request.num_tokens - num_computed_tokens
                if 0 < threshold < num_new_tokens:
                    num_new_tokens = threshold

                # chunked prefill has to be enabled explicitly to allow
                # pooling requests to be chunked
                if not self.enable_chunked_prefill and num_new_tokens > token_budget:
                    # If chunked_prefill is disabled,
                    # we can stop the scheduling here.
                    break

                num_new_tokens = min(num_new_tokens, token_budget)
                assert num_new_tokens > 0

                new_blocks = kv_cache_manager.allocate_slots(
                    request,
                    num_new_tokens,
                    num_new_computed_tokens=num_new_local_computed_tokens,
                    new_computed_blocks=new_computed_blocks,
                    full_sequence_must_fit=self.scheduler_reserve_full_isl,
                )

                if new_blocks is None:
                    # The request cannot be scheduled.
                    break

                request = self.waiting.pop_request()
                self._note_admitted(request)
                running.append(request)
                if request.status == RequestStatus.WAITING:
                    scheduled_new_reqs.append(request)
                elif request.status == RequestStatus.PREEMPTED:
                    scheduled_resumed_reqs.append(request)
                else:
                    raise RuntimeError(f"Invalid request status: {request.status}")

                num_scheduled_tokens[request.request_id] = num_new_tokens
                token_budget -= num_new_tokens
                status_before = request.status
                request.status = RequestStatus.RUNNING
                self._emit_status(request, status_before)
                request.num_computed_tokens = num_computed_tokens
                self._emit_admitted(request)

        # Check if the scheduling constraints are satisfied.
        total_num_scheduled_tokens = sum(num_scheduled_tokens.values())
        assert total_num_scheduled_tokens <= self.max_num_scheduled_tokens

        assert token_budget >= 0
        assert len(self.running) <= self.max_num_running_reqs
        # Since some requests in the RUNNING queue may not be scheduled in
        # this step, the total number of scheduled requests can be smaller than
        # len(self.running).
        assert len(scheduled_new_reqs) + len(scheduled_resumed_reqs) + len(
            scheduled_running_reqs
        ) <= len(self.running)

        scheduler_output = SchedulerOutput(
            scheduled_new_reqs=scheduled_new_reqs,
            scheduled_resumed_reqs=scheduled_resumed_reqs,
            scheduled_running_reqs=scheduled_running_reqs,
            num_scheduled_tokens=num_scheduled_tokens,
            total_num_scheduled_tokens=total_num_scheduled_tokens,
            preempted_req_ids={req.request_id for req in preempted_reqs},
            # finished_req_ids is an existing state in the scheduler,
            # instead of being newly scheduled in this step.
            # It contains the request IDs that are finished in between
            # the previous and the current steps.
            finished_req_ids=self.finished_req_ids,
            req_to_blocks=kv_cache_manager.req_to_blocks,
        )

        self._update_after_schedule(scheduler_output)
        return scheduler_output

    def _preempt_request(self, request: Request) -> None:
        """Preempt a request and put it back to the waiting queue.

        NOTE: The request should be popped from the running queue outside of this
        method.
        """
        assert request.status == RequestStatus.RUNNING, "Only running requests can be preempted"
        self.journal.save_requests((request,))
        self.kv_cache_manager.free(request)
        request.status = RequestStatus.PREEMPTED
        self._emit_status(request, RequestStatus.RUNNING)  # counters as they stood
        num_computed_tokens = request.num_computed_tokens
        request.num_computed_tokens = 0
        self._emit_counter(request, "num_computed_tokens", num_computed_tokens)
        request.num_preemptions += 1
        self._emit_counter(request, "num_preemptions", request.num_preemptions - 1)

        # Put the request back to the waiting queue.
        self.waiting.prepend_request(request)
        self.journal.note(self.waiting.remove_request, request)

    def _update_after_schedule(self, scheduler_output: SchedulerOutput) -> None:
        # Advance the number of computed tokens for the request AFTER
        # the request is scheduled.
        # 1. The scheduler_output of the current step has to include the
        #    original number of scheduled tokens to determine input IDs.
        # 2. Advance the number of computed tokens here allowing us to
        #    schedule the prefill request again immediately in the next
        #    scheduling step.
        # 3. If some tokens (e.g. spec tokens) are rejected later, the number of
        #    computed tokens will be adjusted in update_from_output.
        requests = self.requests
        emit = self._on_counter.emit if self._on_counter.handlers else None
        # Requests whose is_prefill_chunk this changes: with the batch, all a failed
        # step needs to undo this loop (a note per step, not per request).
        flipped = []
        for req_id, num_scheduled_token in scheduler_output.num_scheduled_tokens.items():
            request = requests[req_id]
            request.num_computed_tokens += num_scheduled_token
            is_prefill_chunk = request.num_computed_tokens < (
                request.num_tokens + request.num_output_placeholders
            )
            if is_prefill_chunk is not request.is_prefill_chunk:
                flipped.append(request)
            request.is_prefill_chunk = is_prefill_chunk
            if emit is not None:
                new = request.num_computed_tokens
                emit(req_id, "num_computed_tokens", new - num_scheduled_token, new)
        if (notes := self.journal.entries) is not None:
            notes.append((_unadvance, scheduler_output, requests, flipped))

        # Clear the finished request IDs.
        # NOTE: We shouldn't do self.finished_req_ids.clear() here because
        # it will also affect the scheduler output.
        self.finished_req_ids = set()

    def update_from_output(
        self, scheduler_output: SchedulerOutput, model_runner_output: ModelRunnerOutput
    ) -> list[Request]:
        """Append sampled tokens, apply stop rules, free finished requests.

        Returns the requests that received a token or finished (vLLM makes an
        ``EngineCoreOutput`` for each).
        """
        sampled_token_ids = model_runner_output.sampled_token_ids
        num_scheduled_tokens = scheduler_output.num_scheduled_tokens
        req_id_to_index = model_runner_output.req_id_to_index
        requests = self.requests
        outputs: list[Request] = []

        # NOTE(woosuk): As len(num_scheduled_tokens) can be up to 1K or more,
        # the below loop can be a performance bottleneck. We should do our best
        # to avoid expensive operations inside the loop.
        stopped_running_reqs: set[Request] = set()
        stopped_preempted_reqs: set[Request] = set()
        # A failed step takes back one token from each request in ``outputs``.
        if (notes := self.journal.entries) is not None:
            notes.append((self._take_back_tokens, outputs))
        for req_id in num_scheduled_tokens:
            request = requests.get(req_id)
            if request is None or request.status > _PREEMPTED:
                # The request is already finished. This can happen if the
                # request is aborted while the model is executing it (e.g.,
                # in pipeline parallelism or in async scheduling).
                continue

            new_token_ids = sampled_token_ids[req_id_to_index[req_id]]
            if not new_token_ids:
                # A non-final prefill chunk: nothing was sampled.
                continue

            # Listed before it changes (vLLM appends its output after), so that a
            # failed step knows which requests got a token.
            outputs.append(request)
            status_before_stop = request.status
            # Check for stop and update request status.
            new_token_ids, stopped = self._update_request_with_output(request, new_token_ids)

            if stopped:
                self.journal.note(_unstop, request, status_before_stop)
                self._emit_status(request, status_before_stop)
                self._free_request(request)
                if status_before_stop == _RUNNING:
                    stopped_running_reqs.add(request)
                else:
                    stopped_preempted_reqs.add(request)

        # Remove the stopped requests from the running and waiting queues.
        if stopped_running_reqs:
            self.running = remove_all(self.running, stopped_running_reqs)
        if stopped_preempted_reqs:
            # This is a rare case and unlikely to impact performance.
            self._remove_waiting(stopped_preempted_reqs)

        return outputs

    def _update_request_with_output(
        self, request: Request, new_token_ids: list[int]
    ) -> tuple[list[int], bool]:
        # Append generated tokens and check for stop. Note that if
        # a request is still being prefilled, we expect the model runner
        # to return empty token ids for the request.
        # minivllm has no speculative decoding: a runner samples one token per
        # request (the engine checks), so vLLM's loop over the new tokens,
        # which trims them after a stop, runs exactly once here.
        (output_token_id,) = new_token_ids
        # request.append_output_token_ids(output_token_id), inlined: this runs
        # for every request in every step.
        request._output_token_ids.append(output_token_id)
        request._all_token_ids.append(output_token_id)
        request.num_tokens += 1
        if self._on_counter.handlers:
            # The num_tokens change with the sampled token, inlined: one event per
            # request per step, and a call saved is a tenth of the tracing cost.
            n = request.num_tokens
            self._on_counter.emit(request.request_id, "num_tokens", n - 1, n, output_token_id)

        # Check for stop and update request state.
        # This must be called before we make the EngineCoreOutput.
        stopped = check_stop(request, self.max_model_len)
        return new_token_ids, stopped

    def get_request_counts(self) -> tuple[int, int]:
        """Returns (num_running_reqs, num_waiting_reqs)."""
        return len(self.running), len(self.waiting)

    def add_request(self, request: Request) -> None:
        """Queue a new request (at the back under FCFS, by priority under PRIORITY)."""
        if request.request_id in self.requests:
            raise ValueError(f"request_id {request.request_id!r} is already in use")
        self.waiting.add_request(request)
        self.requests[request.request_id] = request
        self._emit_added(request)

    def finish_requests(
        self, request_ids: str | Iterable[str], finished_status: RequestStatus
    ) -> None:
        """Handles the finish signal from outside the scheduler.

        For example, the API server can abort a request when the client
        disconnects. Unknown or already finished ids are ignored.
        """
        if not RequestStatus.is_finished(finished_status):
            raise ValueError(
                f"finished_status must be a FINISHED_* status, got {finished_status!r}"
            )
        # vLLM iterates a set of the ids; minivllm keeps the caller's order so
        # that the order in which blocks are freed is reproducible.
        ids = (request_ids,) if isinstance(request_ids, str) else dict.fromkeys(request_ids)

        running_requests_to_remove = set()
        waiting_requests_to_remove = []
        valid_requests = []

        # First pass: collect requests to remove from queues
        for req_id in ids:
            request = self.requests.get(req_id)
            if request is None or request.is_finished():
                # Invalid request ID.
                continue

            valid_requests.append(request)
            if request.status == RequestStatus.RUNNING:
                running_requests_to_remove.add(request)
            else:
                waiting_requests_to_remove.append(request)

        # Remove all requests from queues at once for better efficiency
        if running_requests_to_remove:
            self.running = remove_all(self.running, running_requests_to_remove)
        if waiting_requests_to_remove:
            self._remove_waiting(waiting_requests_to_remove)

        # Second pass: set status and free requests
        self.journal.save_requests(valid_requests)
        for request in valid_requests:
            status_before = request.status
            request.status = finished_status
            self._emit_status(request, status_before)
            self._free_request(request)

    def _free_request(self, request: Request) -> None:
        assert request.is_finished()
        self.finished_req_ids.add(request.request_id)
        self._free_blocks(request)

    def _free_blocks(self, request: Request) -> None:
        assert request.is_finished()
        self.kv_cache_manager.free(request)
        self.journal.save_mapping(self.requests)
        del self.requests[request.request_id]

    # -- the undo journal: how a failed step is taken back ------------------

    def _note_admitted(self, request: Request) -> None:
        """Note an admission from ``waiting`` (popped, not yet changed) so it can be undone."""
        journal = self.journal
        if journal.entries is not None:
            journal.note(self.waiting.prepend_request, request)
            journal.save_requests((request,))

    def _take_back_tokens(self, requests: list[Request]) -> None:
        """Undo ``update_from_output``'s token for each request (async: its placeholder too)."""
        for request in requests:
            request._output_token_ids.pop()
            request._all_token_ids.pop()
            request.num_tokens -= 1

    def _remove_waiting(self, requests: Iterable[Request]) -> None:
        """``waiting.remove_requests``, noted: the queue's order is saved first (a rare path)."""
        if self.journal.entries is not None:
            self.journal.note(_refill, self.waiting, list(self.waiting))
        self.waiting.remove_requests(requests)

    def get_num_unfinished_requests(self) -> int:
        """Waiting plus running requests."""
        return len(self.waiting) + len(self.running)

    def has_finished_requests(self) -> bool:
        """Whether requests finished since the last ``schedule()`` (the runner must drop them)."""
        return bool(self.finished_req_ids)

    # -- events: one line at each change, skippable when reading as vLLM ----

    def _emit_added(self, request: Request) -> None:
        if self._on_added.handlers:
            p = request.sampling_params
            self._on_added.emit(
                request.request_id,
                request.num_prompt_tokens,
                request.max_tokens,
                p.min_tokens,
                p.stop_token_ids,
                p.ignore_eos,
                request.priority,
                float(p.temperature),  # the event's field is a float; 0 is a valid temperature
                float(p.top_p),
                p.n,  # always 1: minivllm has no parallel sampling
            )

    def _emit_status(self, request: Request, old_status: RequestStatus) -> None:
        if self._on_status.handlers:
            self._on_status.emit(
                request.request_id,
                old_status,
                request.status,
                request.num_computed_tokens,
                request.num_tokens,
                len(request._output_token_ids),
                request.stop_reason,
            )

    def _emit_counter(self, request: Request, counter: str, old: int) -> None:
        """Emit the change of ``counter`` from ``old`` to its current value on ``request``."""
        if self._on_counter.handlers:
            self._on_counter.emit(request.request_id, counter, old, getattr(request, counter))

    def _emit_admitted(self, request: Request) -> None:
        """Emit an admission's counter changes; record minivllm's ``num_cached_tokens``."""
        if request.num_computed_tokens:
            self._emit_counter(request, "num_computed_tokens", 0)
        # Tokens served by the prefix cache at this admission from scratch
        # (vLLM keeps this in its prefill statistics, not on the request).
        if request.num_cached_tokens != request.num_computed_tokens:
            old = request.num_cached_tokens
            request.num_cached_tokens = request.num_computed_tokens
            self._emit_counter(request, "num_cached_tokens", old)
