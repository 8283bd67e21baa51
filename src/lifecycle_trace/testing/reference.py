"""An executable specification of vLLM 0.22.1's scheduling policy, to compare an engine with.

:class:`ReferenceScheduler` is a second, independent scheduler written from
the rules in the plainest way: lists instead of linked lists, a block's
prefix-cache key is the tuple of every token up to its end instead of a
chained hash, and every decision is recomputed from scratch. It shares no code
with ``minivllm.core``; it only speaks the engine's public vocabulary
(:class:`~minivllm.request.RequestStatus`,
:class:`~minivllm.sampling_params.SamplingParams`).

Drive it with the same inputs as the engine (``add_request``, ``abort``,
``step``, and the same model as a ``sample(request) -> token id`` function) and
compare, step by step, what each one did: :func:`compare_step` returns the
differences as :class:`~lifecycle_trace.check.Violation` s named by the rules
of :data:`REFERENCE_RULES`. A user who changes the scheduler on purpose
subclasses it and overrides the rule that changed (:meth:`~ReferenceScheduler.
admission_order`, :meth:`~ReferenceScheduler.pick_victim`,
:meth:`~ReferenceScheduler.check_stop`, ...).

The one place minivllm departs from vLLM on purpose is kept here too: a request
held by ``min_tokens`` at ``max_model_len`` finishes as ``FINISHED_LENGTH_CAPPED``
(vLLM 0.22.1 leaves it running forever).

Cost: each step is O(requests x tokens) with small constants; it is meant for
engines of a few dozen tokens, as the property suite drives them.
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Iterable
from collections.abc import Mapping
from collections.abc import Sequence
from types import MappingProxyType
from typing import Any

import attrs

from minivllm.request import RequestStatus
from minivllm.sampling_params import RequestOutputKind
from minivllm.sampling_params import SamplingParams

__all__ = [
    "REFERENCE_RULES",
    "Batch",
    "ReferenceConfig",
    "ReferenceKVCache",
    "ReferenceOutput",
    "ReferenceRequest",
    "ReferenceScheduler",
    "ReferenceStep",
    "decode_bytes",
    "shown_text",
]

EOS_TOKEN_ID = 257
"""The byte tokenizer's end-of-sequence token."""

REFERENCE_RULES: Mapping[str, str] = MappingProxyType(
    {
        "reference.scheduled": "each step schedules, per request, the tokens the reference does",
        "reference.preempted": "each step preempts the requests the reference does",
        "reference.admitted": "each step admits the waiting requests the reference does, "
        "in its order",
        "reference.finished": "requests finish when the reference finishes them, "
        "with its status and stop reason",
        "reference.request_state": "after each step every live request has the reference's "
        "status and counters (computed, tokens, cached, preemptions)",
        "reference.queues": "after each step the running and waiting queues hold the "
        "reference's requests in its order",
        "reference.kv_blocks": "after each step as many KV blocks are free as in the reference",
        "reference.outputs": "each step returns the reference's outputs (tokens, text, "
        "finish and stop reasons, cached tokens)",
        "reference.step_completes": "a step the reference completes does not raise "
        "(a crash is reported with the reference's decision for that step)",
    }
)
"""The rules an engine is compared with the reference by, by name."""


def _cdiv(a: int, b: int) -> int:
    return -(a // -b)


def decode_bytes(token_ids: Sequence[int]) -> str:
    """The byte tokenizer's decode: bytes 0-255 as UTF-8, special tokens dropped."""
    return bytes(t for t in token_ids if 0 <= t < 256).decode("utf-8", errors="replace")


def shown_text(token_ids: Sequence[int]) -> str:
    """The text an incremental detokenizer has shown after ``token_ids``.

    As vLLM's: text ending in an incomplete character (a replacement
    character) is held back until a later token completes it.
    """
    for end in range(len(token_ids), -1, -1):
        text = decode_bytes(token_ids[:end])
        if not text.endswith("\ufffd"):
            return text
    return ""


@attrs.frozen
class ReferenceConfig:
    """The limits the reference schedules under (the engine's, by vLLM's names)."""

    max_num_seqs: int
    max_num_batched_tokens: int
    block_size: int
    num_gpu_blocks: int
    max_model_len: int
    enable_chunked_prefill: bool = True
    long_prefill_token_threshold: int = 0
    enable_prefix_caching: bool = False
    scheduler_reserve_full_isl: bool = True
    async_scheduling: bool = False
    policy: str = "fcfs"

    @classmethod
    def of(cls, config: Any) -> ReferenceConfig:
        """The same limits as an object with these attribute names (an ``EngineConfig``).

        Fields the object lacks keep their defaults.
        """
        given = {
            f.name: getattr(config, f.name) for f in attrs.fields(cls) if hasattr(config, f.name)
        }
        return cls(**given)


@attrs.define(eq=False, repr=False)
class ReferenceRequest:
    """One request as the rules see it."""

    request_id: str
    prompt_token_ids: list[int]
    sampling_params: SamplingParams
    max_tokens: int
    """``SamplingParams.max_tokens``, or what ``max_model_len`` leaves after the prompt."""
    eos_token_id: int | None
    arrival: int
    """The order of arrival: FCFS and the priority policy's tie-break."""
    priority: int = 0
    status: RequestStatus = RequestStatus.WAITING
    output_token_ids: list[int] = attrs.Factory(list)
    num_computed_tokens: int = 0
    num_output_placeholders: int = 0
    is_prefill_chunk: bool = False
    num_cached_tokens: int = 0
    num_preemptions: int = 0
    stop_reason: int | str | None = None
    block_ids: list[int] = attrs.Factory(list)

    @classmethod
    def new(
        cls,
        request_id: str,
        prompt_token_ids: Sequence[int],
        sampling_params: SamplingParams,
        max_model_len: int,
        arrival: int,
        priority: int = 0,
    ) -> ReferenceRequest:
        """A waiting request, its limits taken from its sampling parameters."""
        prompt = list(prompt_token_ids)
        given = sampling_params.max_tokens
        max_tokens = given if given is not None else max_model_len - len(prompt)
        eos = None if sampling_params.ignore_eos else EOS_TOKEN_ID
        return cls(request_id, prompt, sampling_params, max_tokens, eos, arrival, priority)

    @property
    def all_token_ids(self) -> list[int]:
        """Prompt and outputs."""
        return self.prompt_token_ids + self.output_token_ids

    @property
    def num_prompt_tokens(self) -> int:
        """Prompt tokens."""
        return len(self.prompt_token_ids)

    @property
    def num_tokens(self) -> int:
        """Prompt plus output tokens."""
        return self.num_prompt_tokens + self.num_output_tokens

    @property
    def num_output_tokens(self) -> int:
        """Output tokens."""
        return len(self.output_token_ids)

    def is_finished(self) -> bool:
        """Whether the request has a FINISHED_* status."""
        return self.status > RequestStatus.PREEMPTED

    def __repr__(self) -> str:
        return (
            f"ReferenceRequest({self.request_id!r}, {self.status.name}, "
            f"computed={self.num_computed_tokens}, tokens={self.num_tokens})"
        )


class ReferenceKVCache:
    """The paged KV cache as the rules state it: blocks, ref counts, an LRU free list, a cache.

    Block 0 is the null block; blocks ``1 .. num_gpu_blocks - 1`` start in the
    free list in id order. New blocks come from the front of the free list; a
    released block goes to its back. A full block of a request, once computed
    or scheduled, is cached under the tuple of all tokens up to its end, and
    keeps that key while it sits in the free list, until it is handed out again.
    """

    def __init__(self, config: ReferenceConfig) -> None:
        self.block_size = config.block_size
        self.max_model_len = config.max_model_len
        self.enable_caching = config.enable_prefix_caching
        self.free: list[int] = list(range(1, config.num_gpu_blocks))
        self.ref_cnt = [0] * config.num_gpu_blocks
        self.key_of: dict[int, tuple[int, ...]] = {}
        self.blocks_with_key: dict[tuple[int, ...], list[int]] = {}
        self.num_keyed: dict[str, int] = {}

    def keys(self, request: ReferenceRequest) -> list[tuple[int, ...]]:
        """The cache key of each full block of the request's tokens."""
        tokens = request.all_token_ids
        bs = self.block_size
        return [tuple(tokens[: (i + 1) * bs]) for i in range(len(tokens) // bs)]

    def find_cache_hit(self, request: ReferenceRequest) -> list[int]:
        """The cached blocks that start the request, never covering its last token."""
        if not self.enable_caching:
            return []
        usable = (request.num_tokens - 1) // self.block_size
        hits = []
        for key in self.keys(request)[:usable]:
            holders = self.blocks_with_key.get(key)
            if not holders:
                break
            hits.append(holders[0])
        return hits

    def blocks_to_take(self, request: ReferenceRequest, num_tokens: int, hits: list[int]) -> int:
        """Blocks that must leave the free list for the request to cover ``num_tokens``.

        Fresh blocks for what neither its blocks nor the hits cover, plus every
        hit that is itself in the free list (nobody else holds it).
        """
        covered = len(request.block_ids) + len(hits)
        fresh = max(_cdiv(min(num_tokens, self.max_model_len), self.block_size) - covered, 0)
        return fresh + sum(1 for b in hits if self.ref_cnt[b] == 0)

    def allocate(
        self,
        request: ReferenceRequest,
        num_new_tokens: int,
        hits: list[int],
        whole_request_must_fit: bool,
    ) -> bool:
        """Give the request its hits and the blocks for ``num_new_tokens`` more; False if short."""
        computed = min(
            request.num_computed_tokens + len(hits) * self.block_size, self.max_model_len
        )
        if whole_request_must_fit:
            whole = min(request.num_tokens, self.max_model_len)
            if self.blocks_to_take(request, whole, hits) > len(self.free):
                return False
        needed = min(computed + num_new_tokens, self.max_model_len)
        if self.blocks_to_take(request, needed, hits) > len(self.free):
            return False
        for block in hits:
            if self.ref_cnt[block] == 0:
                self.free.remove(block)
            self.ref_cnt[block] += 1
            request.block_ids.append(block)
        if hits:
            self.num_keyed[request.request_id] = len(request.block_ids)
        while len(request.block_ids) < _cdiv(needed, self.block_size):
            block = self.free.pop(0)
            self.forget_key(block)
            self.ref_cnt[block] += 1
            request.block_ids.append(block)
        if self.enable_caching:
            self.cache_full_blocks(request, min(computed + num_new_tokens, request.num_tokens))
        return True

    def forget_key(self, block: int) -> None:
        """A block handed out again no longer holds what its key names."""
        key = self.key_of.pop(block, None)
        if key is not None:
            holders = self.blocks_with_key[key]
            holders.remove(block)
            if not holders:
                del self.blocks_with_key[key]

    def cache_full_blocks(self, request: ReferenceRequest, num_tokens: int) -> None:
        """Key the request's blocks that ``num_tokens`` tokens fill, from the first unkeyed one."""
        keys = self.keys(request)
        first = self.num_keyed.get(request.request_id, 0)
        last = num_tokens // self.block_size
        for i in range(first, last):
            block = request.block_ids[i]
            if block not in self.key_of:
                self.key_of[block] = keys[i]
                self.blocks_with_key.setdefault(keys[i], []).append(block)
        self.num_keyed[request.request_id] = max(first, last)

    def release(self, request: ReferenceRequest) -> None:
        """Drop the request's blocks; those nobody holds go to the back of the free list.

        Last block first, so a request's tail is evicted before its head and
        shared prefixes live longest.
        """
        self.num_keyed.pop(request.request_id, None)
        for block in reversed(request.block_ids):
            self.ref_cnt[block] -= 1
        for block in reversed(request.block_ids):
            if self.ref_cnt[block] == 0:
                self.free.append(block)
        request.block_ids = []

    @property
    def num_free_blocks(self) -> int:
        """Blocks in the free list."""
        return len(self.free)


@attrs.frozen
class ReferenceOutput:
    """What the engine returns for one request after a step."""

    request_id: str
    token_ids: tuple[int, ...]
    text: str
    finished: bool
    finish_reason: str | None
    stop_reason: int | str | None
    num_cached_tokens: int


@attrs.frozen
class ReferenceStep:
    """What one reference engine step decided and returned.

    ``scheduled``, ``preempted`` and ``admitted`` describe the batch this step
    scheduled (empty if none); ``finished`` and ``outputs`` come from the batch
    whose model output this step processed (under async scheduling, the
    previous step's).
    """

    scheduled: Mapping[str, int]
    preempted: tuple[str, ...]
    admitted: tuple[str, ...]
    finished: Mapping[str, tuple[RequestStatus, int | str | None]]
    outputs: tuple[ReferenceOutput, ...]
    processed: tuple[str, ...] | None = None
    """The requests of the batch whose output this step processed (None: no batch)."""


class Batch:
    """One scheduled batch: its decisions and, once the model ran, its sampled tokens."""

    __slots__ = ("admitted", "preempted", "sampled", "scheduled")

    def __init__(self) -> None:
        self.scheduled: dict[str, int] = {}
        self.preempted: list[str] = []
        self.admitted: list[str] = []
        # request id -> the token sampled for it, or None mid-prefill
        self.sampled: dict[str, int | None] = {}


_FINISH_REASONS = {
    RequestStatus.FINISHED_STOPPED: "stop",
    RequestStatus.FINISHED_LENGTH_CAPPED: "length",
    RequestStatus.FINISHED_ABORTED: "abort",
}
_NO_DECISIONS: Mapping[str, int] = MappingProxyType({})


class ReferenceScheduler:
    """vLLM 0.22.1's scheduler and engine step, from its rules: FCFS or priority, sync or async.

    ``sample(request)`` is the model: the token the request samples in the batch
    just scheduled. It sees ``request_id``, ``prompt_token_ids``,
    ``output_token_ids``, ``num_prompt_tokens`` and ``num_computed_tokens``
    (which already counts the batch), as the engine's
    ``DummyModelRunner(sample_fn=...)`` does.

    Under async scheduling the engine keeps a queue of two batches: a step
    schedules a batch and, once two are in flight (or nothing was scheduled),
    processes the oldest one's output. A request whose batch will sample holds
    an output placeholder until that output is processed, so its
    ``num_computed_tokens`` runs ahead of its ``num_tokens``.
    """

    kv_cache_class: type[ReferenceKVCache] = ReferenceKVCache
    """The KV cache model (override to model another one)."""

    batch_queue_size = 2
    """Batches in flight under async scheduling (vLLM's uniproc executor runs two)."""

    def __init__(self, config: Any, sample: Callable[[Any], int]) -> None:
        self.config = ReferenceConfig.of(config)
        self.sample = sample
        self.kv = self.kv_cache_class(self.config)
        self.requests: dict[str, ReferenceRequest] = {}
        self.waiting: list[ReferenceRequest] = []
        self.running: list[ReferenceRequest] = []
        self.in_flight: list[Batch] = []
        self.arrivals = 0
        # Finished since the last schedule (the engine still has work to hand on).
        self.finished_req_ids: set[str] = set()
        self.finished: dict[str, tuple[RequestStatus, int | str | None]] = {}

    # -- requests in and out -------------------------------------------------------

    def add_request(
        self,
        request_id: str,
        prompt_token_ids: Sequence[int],
        sampling_params: SamplingParams,
        priority: int = 0,
    ) -> ReferenceRequest:
        """Queue a request (at the back; the priority policy orders the queue when it admits)."""
        request = ReferenceRequest.new(
            request_id,
            prompt_token_ids,
            sampling_params,
            self.config.max_model_len,
            self.arrivals,
            priority,
        )
        self.arrivals += 1
        self.requests[request_id] = request
        self.waiting.append(request)
        return request

    def abort(self, request_ids: Iterable[str]) -> None:
        """Abort requests wherever they are; unknown or finished ids are ignored."""
        for request_id in dict.fromkeys(request_ids):
            request = self.requests.get(request_id)
            if request is not None:
                self.finish(request, RequestStatus.FINISHED_ABORTED)

    def finish(self, request: ReferenceRequest, status: RequestStatus) -> None:
        """Take the request out of its queue, give its status, release its blocks."""
        if request in self.running:
            self.running.remove(request)
        else:
            self.waiting.remove(request)
        request.status = status
        self.kv.release(request)
        del self.requests[request.request_id]
        self.finished_req_ids.add(request.request_id)
        self.finished[request.request_id] = (status, request.stop_reason)

    def has_requests(self) -> bool:
        """Unfinished requests, or finished ones the next schedule still hands on."""
        return bool(self.requests) or bool(self.finished_req_ids)

    def has_work(self) -> bool:
        """Whether a step would do anything (requests, or batches in flight)."""
        return self.has_requests() or bool(self.in_flight)

    # -- the engine step -------------------------------------------------------------

    def step(self) -> ReferenceStep:
        """One engine step: schedule and run a batch; process the oldest batch's output."""
        self.finished = {}
        scheduled = None
        if self.has_requests():
            scheduled = self.schedule()
            self.execute(scheduled)
            self.in_flight.insert(0, scheduled)
            size = self.batch_queue_size if self.config.async_scheduling else 1
            if scheduled.scheduled and len(self.in_flight) < size:
                return self._result(scheduled, None, [])
        elif not self.in_flight:
            return self._result(None, None, [])
        oldest = self.in_flight.pop()
        got_token = self.update_from_output(oldest)
        return self._result(scheduled, oldest, self.make_outputs(got_token))

    def _result(
        self, batch: Batch | None, processed: Batch | None, outputs: list[ReferenceOutput]
    ) -> ReferenceStep:
        return ReferenceStep(
            MappingProxyType(dict(batch.scheduled)) if batch is not None else _NO_DECISIONS,
            tuple(batch.preempted) if batch is not None else (),
            tuple(batch.admitted) if batch is not None else (),
            MappingProxyType(dict(self.finished)),
            tuple(outputs),
            tuple(processed.scheduled) if processed is not None else None,
        )

    # -- scheduling -------------------------------------------------------------------

    def tokens_to_compute(self, request: ReferenceRequest, num_computed: int) -> int:
        """A request's remaining tokens (output placeholders included), capped by the threshold."""
        n = request.num_tokens + request.num_output_placeholders - num_computed
        threshold = self.config.long_prefill_token_threshold
        if 0 < threshold < n:
            n = threshold
        return n

    def done_in_flight(self, request: ReferenceRequest) -> bool:
        """Async: the batches in flight already reach ``max_tokens``, so skip the request."""
        return (
            request.num_output_placeholders > 0
            and request.num_computed_tokens + 2 - request.num_output_placeholders
            >= request.num_prompt_tokens + request.max_tokens
        )

    def schedule(self) -> Batch:
        """Decide a batch: running requests in order, then admissions from the waiting queue."""
        config = self.config
        batch = Batch()
        scheduled = batch.scheduled
        budget = config.max_num_batched_tokens

        index = 0
        while index < len(self.running) and budget > 0:
            request = self.running[index]
            if self.done_in_flight(request):
                index += 1
                continue
            n = self.tokens_to_compute(request, request.num_computed_tokens)
            n = min(n, budget, config.max_model_len - 1 - request.num_computed_tokens)
            if n <= 0:
                index += 1
                continue
            while not self.kv.allocate(request, n, [], whole_request_must_fit=False):
                victim = self.pick_victim()
                if victim.request_id in scheduled:
                    # Already scheduled in this batch: its tokens go back to the budget.
                    budget += scheduled.pop(victim.request_id)
                    index -= 1
                self.preempt(victim)
                batch.preempted.append(victim.request_id)
                if victim is request:
                    break
            if request.status is RequestStatus.PREEMPTED:
                break
            scheduled[request.request_id] = n
            budget -= n
            index += 1

        if not batch.preempted:
            while self.waiting and budget > 0 and len(self.running) < config.max_num_seqs:
                request = self.next_to_admit()
                hits = self.kv.find_cache_hit(request)
                num_computed = len(hits) * config.block_size
                n = self.tokens_to_compute(request, num_computed)
                if not config.enable_chunked_prefill and n > budget:
                    break
                n = min(n, budget)
                if not self.kv.allocate(request, n, hits, config.scheduler_reserve_full_isl):
                    break
                self.waiting.remove(request)
                self.running.append(request)
                request.status = RequestStatus.RUNNING
                request.num_computed_tokens = num_computed
                # minivllm's own counter: the hits of the last admission from scratch.
                request.num_cached_tokens = num_computed
                batch.admitted.append(request.request_id)
                scheduled[request.request_id] = n
                budget -= n

        for request_id, n in scheduled.items():
            request = self.requests[request_id]
            request.num_computed_tokens += n
            request.is_prefill_chunk = request.num_computed_tokens < (
                request.num_tokens + request.num_output_placeholders
            )
            if config.async_scheduling and not request.is_prefill_chunk:
                request.num_output_placeholders += 1
        self.finished_req_ids = set()
        return batch

    def next_to_admit(self) -> ReferenceRequest:
        """The waiting request admission considers next.

        FCFS: the head of the queue (a preempted request goes back to the
        head). Priority: the lowest ``(priority, arrival, request_id)``.
        """
        if self.config.policy == "priority":
            return min(self.waiting, key=self.admission_key)
        return self.waiting[0]

    @staticmethod
    def admission_key(request: ReferenceRequest) -> tuple[int, int, str]:
        """A waiting request's place under the priority policy: (priority, arrival, id)."""
        return (request.priority, request.arrival, request.request_id)

    def pick_victim(self) -> ReferenceRequest:
        """The running request to preempt when KV blocks run out.

        FCFS: the last running request. Priority: the highest
        ``(priority, arrival)``.
        """
        if self.config.policy == "priority":
            return max(self.running, key=lambda r: (r.priority, r.arrival))
        return self.running[-1]

    def preempt(self, request: ReferenceRequest) -> None:
        """Evict a running request back to the waiting queue (FCFS: its head); it recomputes."""
        self.running.remove(request)
        self.kv.release(request)
        request.status = RequestStatus.PREEMPTED
        request.num_computed_tokens = 0
        request.num_preemptions += 1
        self.waiting.insert(0, request)

    # -- the model and its output ---------------------------------------------------

    def execute(self, batch: Batch) -> None:
        """Run the model on a batch just scheduled: a token for each request not mid-prefill."""
        for request_id in batch.scheduled:
            request = self.requests[request_id]
            batch.sampled[request_id] = None if request.is_prefill_chunk else self.sample(request)

    def update_from_output(self, batch: Batch) -> list[ReferenceRequest]:
        """Append each sampled token, apply the stop rules; finished requests leave at once.

        A request that finished (or was aborted) since its batch was scheduled
        gets nothing; a request preempted since then still gets its token.
        """
        got_token = []
        for request_id in batch.scheduled:
            request = self.requests.get(request_id)
            token = batch.sampled[request_id]
            if request is None or token is None:
                continue
            was_running = request.status is RequestStatus.RUNNING
            request.output_token_ids.append(token)
            if self.config.async_scheduling:
                request.num_output_placeholders -= 1
            status = self.check_stop(request)
            if self.config.async_scheduling and was_running and self.kv.enable_caching:
                computed = request.num_computed_tokens - request.num_output_placeholders
                self.kv.cache_full_blocks(request, computed)
            if status is not None:
                self.finish(request, status)
            got_token.append(request)
        return got_token

    def check_stop(self, request: ReferenceRequest) -> RequestStatus | None:
        """The stop rules, in vLLM's order: min_tokens, EOS, stop token ids, length."""
        params = request.sampling_params
        at_model_len = request.num_tokens >= self.config.max_model_len
        if request.num_output_tokens < params.min_tokens:
            return RequestStatus.FINISHED_LENGTH_CAPPED if at_model_len else None
        last = request.output_token_ids[-1]
        if last == request.eos_token_id:
            return RequestStatus.FINISHED_STOPPED
        if last in params.stop_token_ids:
            request.stop_reason = last
            return RequestStatus.FINISHED_STOPPED
        if at_model_len or request.num_output_tokens >= request.max_tokens:
            return RequestStatus.FINISHED_LENGTH_CAPPED
        return None

    def check_stop_strings(self, request: ReferenceRequest) -> int | None:
        """Where a stop string completed by the newest token starts in the text, or None.

        Only once more than ``min_tokens`` tokens are out, and only in text the
        newest token added (plus the overlap a stop string needs), so an earlier
        occurrence never matches late.
        """
        params = request.sampling_params
        outputs = request.output_token_ids
        if len(outputs) <= params.min_tokens:
            return None
        before = shown_text(outputs[:-1])
        text = shown_text(outputs)
        added = len(text) - len(before)
        if added <= 0:
            return None
        for stop in params.stop:
            index = text.find(stop, max(0, len(text) - added - len(stop) + 1))
            if index != -1:
                request.stop_reason = stop
                return index
        return None

    def make_outputs(self, got_token: list[ReferenceRequest]) -> list[ReferenceOutput]:
        """The outputs of the requests that sampled a token, as the engine returns them."""
        outputs = []
        for request in got_token:
            params = request.sampling_params
            finished = request.is_finished()
            kept_text = None
            if params.stop and not finished:
                cut = self.check_stop_strings(request)
                if cut is not None:
                    kept_text = shown_text(request.output_token_ids)[:cut]
                    self.finish(request, RequestStatus.FINISHED_STOPPED)
                    finished = True
            if params.output_kind is RequestOutputKind.DELTA:
                token_ids = tuple(request.output_token_ids[-1:])
            elif params.output_kind is RequestOutputKind.CUMULATIVE or finished:
                token_ids = tuple(request.output_token_ids)
            else:
                continue
            outputs.append(
                ReferenceOutput(
                    request.request_id,
                    token_ids,
                    kept_text if kept_text is not None else decode_bytes(token_ids),
                    finished,
                    _FINISH_REASONS.get(request.status) if finished else None,
                    request.stop_reason if finished else None,
                    request.num_cached_tokens,
                )
            )
        return outputs
