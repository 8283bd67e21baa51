"""Scheduling-policy bugs the checker's bounds do not see: a fairer mutation check.

Each mutant is a realistic one- or two-line bug in one part of the scheduler
(queues, token budget, chunking, the long-prefill cap, the KV cache manager,
the block pool and its hashing, stop rules, outputs, preemption,
``max_num_seqs``). Most keep the engine self-consistent: the events still
rebuild its state and every bound holds; only a statement of what the
scheduler *should* have done catches them.

Two kinds of patch, both undone when the test ends:

- :class:`Wrap` replaces one method or function by a wrapper around the
  original (robust to edits elsewhere in the engine);
- :class:`Lines` replaces a run of source lines, matched line by line with
  indentation ignored (it fails loudly if the engine no longer has them; it
  recompiles the function alone, so it cannot edit a method that calls
  ``super()``: wrap those).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any

import attrs
import pytest

from helpers.mutants import MUTANTS
from helpers.mutants import Mutant
from minivllm.core import kv_cache_manager as kv_module
from minivllm.core.block_pool import BlockPool
from minivllm.core.block_pool import FreeKVCacheBlockQueue
from minivllm.core.kv_cache_manager import KVCacheManager
from minivllm.core.sched import scheduler as scheduler_module
from minivllm.core.sched import utils as stop_rules
from minivllm.core.sched.async_scheduler import AsyncScheduler
from minivllm.core.sched.scheduler import Scheduler
from minivllm.engine.llm_engine import LLMEngine
from minivllm.request import Request

__all__ = ["ALL_MUTANTS", "PARTS", "POLICY_MUTANTS", "Lines", "Wrap", "part_of"]


@attrs.frozen
class Wrap:
    """One injected bug: ``owner.attribute`` becomes ``make(original)``."""

    name: str
    owner: Any
    attribute: str
    make: Callable[[Any], Any]
    also_patch: tuple[Any, ...] = ()

    def apply(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Install the wrapper (undone when the test ends)."""
        original = getattr(self.owner, self.attribute, None)
        if original is None:
            raise AssertionError(
                f"mutant {self.name}: {self.owner!r} has no {self.attribute!r}; update the mutant"
            )
        replacement = self.make(original)
        for target in (self.owner, *self.also_patch):
            monkeypatch.setattr(target, self.attribute, replacement)


@attrs.frozen
class Lines(Mutant):
    """One injected bug: in ``owner.function``, the lines ``original`` become ``mutated``.

    ``original`` is one or more lines, each compared with the source with its
    indentation stripped, and must match exactly one run of consecutive lines.
    ``mutated`` lines get the first matched line's indentation plus their own.
    Installed as a :class:`~helpers.mutants.Mutant` is.
    """

    def mutate(self, source: str) -> str:
        """``source`` with the matched run of lines replaced by ``mutated``."""
        lines = source.split("\n")
        want = [line.strip() for line in self.original.split("\n")]
        starts = [
            i
            for i in range(len(lines) - len(want) + 1)
            if [line.strip() for line in lines[i : i + len(want)]] == want
        ]
        if len(starts) != 1:
            raise AssertionError(
                f"mutant {self.name}: expected the lines {self.original!r} once in "
                f"{self.function}, found them {len(starts)} times; update the mutant"
            )
        at = starts[0]
        indent = lines[at][: len(lines[at]) - len(lines[at].lstrip())]
        new = [indent + line for line in self.mutated.split("\n")]
        return "\n".join([*lines[:at], *new, *lines[at + len(want) :]])


# -- wrappers -------------------------------------------------------------------


def _shortest_first(schedule: Callable[[Scheduler], Any]) -> Callable[[Scheduler], Any]:
    def wrapped(self: Scheduler) -> Any:
        # Shortest job first: the (FCFS) waiting queue is kept sorted by length.
        waiting: Any = self.waiting
        if isinstance(waiting, deque):
            ordered = sorted(waiting, key=lambda r: r.num_tokens)
            waiting.clear()
            waiting.extend(ordered)
        return schedule(self)

    return wrapped


def _no_full_sequence_gate(allocate: Callable[..., Any]) -> Callable[..., Any]:
    def wrapped(self: KVCacheManager, *args: Any, **kwargs: Any) -> Any:
        kwargs["full_sequence_must_fit"] = False
        return allocate(self, *args, **kwargs)

    return wrapped


def _resumed_skips_lookup(lookup: Callable[..., Any]) -> Callable[..., Any]:
    def wrapped(self: KVCacheManager, request: Any) -> Any:
        if request.num_preemptions > 0:
            return [], 0
        return lookup(self, request)

    return wrapped


def _hash_ignores_parent(hash_tokens: Callable[[int, tuple[int, ...]], int]) -> Any:
    def wrapped(parent_block_hash: int, block_token_ids: tuple[int, ...]) -> int:
        return hash_tokens(kv_module.NONE_HASH, block_token_ids)

    return wrapped


def _take_from_tail(popleft_n: Callable[..., Any]) -> Callable[..., Any]:
    def wrapped(self: FreeKVCacheBlockQueue, n: int) -> list[Any]:
        # Most recently freed first: the LRU order read backwards.
        taken = self.get_all_free_blocks()[::-1][:n]
        for block in taken:
            self.remove(block)
        return taken

    return wrapped


def _stop_token_before_min_tokens(check: Callable[..., bool]) -> Callable[..., bool]:
    def wrapped(request: Any, max_model_len: int) -> bool:
        params = request.sampling_params
        last = request.output_token_ids[-1]
        if params.stop_token_ids and last in params.stop_token_ids:
            request.status = scheduler_module.RequestStatus.FINISHED_STOPPED
            request.stop_reason = last
            return True
        return check(request, max_model_len)

    return wrapped


def _stop_reason_dropped(check: Callable[..., bool]) -> Callable[..., bool]:
    def wrapped(request: Any, max_model_len: int) -> bool:
        stopped = check(request, max_model_len)
        request.stop_reason = None
        return stopped

    return wrapped


def _no_cache_after_sampling(update: Callable[..., Any]) -> Callable[..., Any]:
    def wrapped(self: AsyncScheduler, request: Any, new_token_ids: list[int]) -> Any:
        kv = self.kv_cache_manager
        kv.cache_blocks = lambda *args, **kwargs: None
        try:
            return update(self, request, new_token_ids)
        finally:
            del kv.cache_blocks

    return wrapped


def _priority_ignored(less_than: Callable[[Request, Request], bool]) -> Any:
    def wrapped(self: Request, other: Request) -> bool:
        # The heap orders by arrival only, as if every priority were equal.
        return (self.arrival_time, self.request_id) < (other.arrival_time, other.request_id)

    return wrapped


# -- the catalogue ------------------------------------------------------------------

POLICY_MUTANTS: tuple[Lines | Wrap, ...] = (
    # queues
    Wrap("admit the shortest waiting prompt first", Scheduler, "schedule", _shortest_first),
    Lines(
        "preempted request goes to the back of waiting",
        Scheduler,
        "_preempt_request",
        "self.waiting.prepend_request(request)",
        "self.waiting.add_request(request)",
    ),
    Lines(
        "a waiting request that does not fit moves to the back of the queue",
        Scheduler,
        "schedule",
        "if new_blocks is None:\n# The request cannot be scheduled.\nbreak\n\n"
        "request = self.waiting.pop_request()",
        "if new_blocks is None:\n    self.waiting.add_request(self.waiting.pop_request())\n"
        "    break\n\nrequest = self.waiting.pop_request()",
    ),
    # token budget and max_num_seqs
    Lines(
        "cache-hit tokens charged to the token budget",
        Scheduler,
        "schedule",
        "token_budget -= num_new_tokens\nstatus_before = request.status",
        "token_budget -= num_new_tokens + num_new_local_computed_tokens\n"
        "status_before = request.status",
    ),
    Lines(
        "running requests not capped by the remaining budget",
        Scheduler,
        "schedule",
        "num_new_tokens = token_budget",
        "pass",
    ),
    Lines(
        "requests admitted this step counted twice against max_num_seqs",
        Scheduler,
        "schedule",
        "if len(running) == self.max_num_running_reqs:",
        "if len(running) + len(scheduled_new_reqs) >= self.max_num_running_reqs:",
    ),
    # chunked prefill and the long-prefill threshold
    Lines(
        "a partial prefill with chunked prefill off",
        Scheduler,
        "schedule",
        "if not self.enable_chunked_prefill and num_new_tokens > token_budget:",
        "if False:",
    ),
    Lines(
        "chunked-prefill-off check ignores the long-prefill cap",
        Scheduler,
        "schedule",
        "if not self.enable_chunked_prefill and num_new_tokens > token_budget:",
        "if not self.enable_chunked_prefill and request.num_tokens - num_computed_tokens "
        "> token_budget:",
    ),
    Lines(
        "long-prefill threshold not applied to running requests",
        Scheduler,
        "schedule",
        "if 0 < threshold < num_new_tokens:\nnum_new_tokens = threshold\n"
        "if num_new_tokens > token_budget:",
        "if num_new_tokens > token_budget:",
    ),
    # KV cache manager
    Wrap(
        "full-sequence admission gate dropped",
        KVCacheManager,
        "allocate_slots",
        _no_full_sequence_gate,
    ),
    Lines(
        "full-sequence admission gate ignores prefix-cache hits",
        KVCacheManager,
        "allocate_slots",
        "needed = self.get_num_blocks_to_allocate(request_id, full_num_tokens, computed_blocks)",
        "needed = self.get_num_blocks_to_allocate(request_id, full_num_tokens, [])",
    ),
    Wrap(
        "a resumed request skips the prefix-cache lookup",
        KVCacheManager,
        "get_computed_blocks",
        _resumed_skips_lookup,
    ),
    Lines(
        "prefix-cache hits capped at the prompt, not at all tokens",
        KVCacheManager,
        "get_computed_blocks",
        "max_cache_hit_length = request.num_tokens - 1",
        "max_cache_hit_length = request.num_prompt_tokens - 1",
    ),
    Lines(
        "a decode that fills a block does not cache it",
        KVCacheManager,
        "allocate_slots",
        "if self.enable_caching:\nself.cache_blocks(request, "
        "min(num_tokens_need_slot, request.num_tokens))\nreturn []",
        "return []",
    ),
    # block pool and hashing
    Lines(
        "a finished request's blocks freed head first",
        KVCacheManager,
        "free",
        "self.block_pool.free_blocks(reversed(blocks))",
        "self.block_pool.free_blocks(blocks)",
    ),
    Lines(
        "a reused cached block keeps its stale hash",
        BlockPool,
        "get_new_blocks",
        "self._maybe_evict_cached_block(block)",
        "pass",
    ),
    Wrap(
        "block hash ignores the parent block",
        kv_module,
        "hash_block_tokens",
        _hash_ignores_parent,
    ),
    Wrap(
        "new blocks taken from the tail of the free queue (MRU eviction)",
        FreeKVCacheBlockQueue,
        "popleft_n",
        _take_from_tail,
    ),
    Lines(
        "a prefix-cache hit on a free block stays in the free queue",
        BlockPool,
        "touch",
        "queue.remove(block)",
        "pass",
    ),
    # stop rules
    Wrap(
        "stop token honoured before min_tokens",
        stop_rules,
        "check_stop",
        _stop_token_before_min_tokens,
        also_patch=(scheduler_module,),
    ),
    Wrap(
        "stop token's stop_reason not recorded",
        stop_rules,
        "check_stop",
        _stop_reason_dropped,
        also_patch=(scheduler_module,),
    ),
    Lines(
        "off-by-one in the stop-string min_tokens gate",
        LLMEngine,
        "_check_stop_strings",
        "if len(outputs) <= request.sampling_params.min_tokens:",
        "if len(outputs) < request.sampling_params.min_tokens:",
    ),
    Lines(
        "stop string searched in the whole text, not the newest",
        LLMEngine,
        "_check_stop_strings",
        "index = text.find(stop, max(0, len(text) - new_char_count - len(stop) + 1))",
        "index = text.find(stop)",
    ),
    Lines(
        "max_model_len cap one token late",
        stop_rules,
        "check_stop",
        "if request.num_tokens >= max_model_len or num_output_tokens >= request.max_tokens:",
        "if request.num_tokens > max_model_len or num_output_tokens >= request.max_tokens:",
        also_patch=(scheduler_module,),
    ),
    # outputs and counters
    Lines(
        "num_cached_tokens records the chunk size",
        Scheduler,
        "_emit_admitted",
        "request.num_cached_tokens = request.num_computed_tokens",
        "request.num_cached_tokens = request.num_tokens - request.num_computed_tokens",
    ),
    Lines(
        "DELTA outputs carry every token so far",
        LLMEngine,
        "_make_outputs",
        "token_ids = request._output_token_ids[-1:]",
        "token_ids = request._output_token_ids.copy()",
    ),
    Lines(
        "a stop-string finish keeps the text past the stop string",
        LLMEngine,
        "_make_outputs",
        "completion._text = kept_text",
        "pass",
    ),
    # async scheduling
    Lines(
        "async: no early skip of a request whose batches in flight reach max_tokens",
        Scheduler,
        "schedule",
        "request.num_output_placeholders > 0",
        "False",
    ),
    Lines(
        "async: a running request's output placeholders not counted in its tokens",
        Scheduler,
        "schedule",
        "request.num_tokens + request.num_output_placeholders - request.num_computed_tokens",
        "request.num_tokens - request.num_computed_tokens",
    ),
    Lines(
        "async: the token of a batch in flight is dropped when its request was preempted",
        Scheduler,
        "update_from_output",
        "if request is None or request.status > _PREEMPTED:",
        "if request is None or request.status >= _PREEMPTED:",
    ),
    Wrap(
        "async: a sampled token's full block is not cached",
        AsyncScheduler,
        "_update_request_with_output",
        _no_cache_after_sampling,
    ),
    # the priority policy
    Wrap("priority: the waiting heap ignores priority", Request, "__lt__", _priority_ignored),
    Lines(
        "priority: the victim is the highest-priority running request",
        Scheduler,
        "schedule",
        "preempted_req = max(",
        "preempted_req = min(",
    ),
    Lines(
        "priority: an unscheduled victim's tokens stay charged to the budget",
        Scheduler,
        "schedule",
        "token_budget += num_scheduled_tokens.pop(preempted_req_id)",
        "num_scheduled_tokens.pop(preempted_req_id)",
    ),
    # preemption
    Lines(
        "a preempted request keeps its blocks",
        Scheduler,
        "_preempt_request",
        "self.kv_cache_manager.free(request)",
        "pass",
    ),
)
"""The policy bugs, one at a time."""

ALL_MUTANTS: tuple[Mutant | Lines | Wrap, ...] = (*MUTANTS, *POLICY_MUTANTS)
"""The original bound-checking mutants and the policy mutants."""

PARTS: dict[str, tuple[str, ...]] = {
    "queues": (
        "admit the shortest waiting prompt first",
        "preempted request goes to the back of waiting",
        "a waiting request that does not fit moves to the back of the queue",
        "admit waiting requests in a step that preempted",
    ),
    "budget and max_num_seqs": (
        "off-by-one token budget",
        "cache-hit tokens charged to the token budget",
        "running requests not capped by the remaining budget",
        "requests admitted this step counted twice against max_num_seqs",
        "admit beyond max_num_seqs",
    ),
    "chunking and long-prefill threshold": (
        "a partial prefill with chunked prefill off",
        "chunked-prefill-off check ignores the long-prefill cap",
        "long-prefill threshold not applied to running requests",
    ),
    "KV cache manager": (
        "full-sequence admission gate dropped",
        "full-sequence admission gate ignores prefix-cache hits",
        "a resumed request skips the prefix-cache lookup",
        "prefix-cache hits capped at the prompt, not at all tokens",
        "a decode that fills a block does not cache it",
        "prefix-cache hit on the whole prompt",
        "cache-hit blocks in the free queue not counted as allocations",
        "leak a block on abort",
        "forget to free blocks on finish",
    ),
    "block pool and hashing": (
        "a finished request's blocks freed head first",
        "a reused cached block keeps its stale hash",
        "block hash ignores the parent block",
        "new blocks taken from the tail of the free queue (MRU eviction)",
        "a prefix-cache hit on a free block stays in the free queue",
    ),
    "stop rules": (
        "stop token honoured before min_tokens",
        "stop token's stop_reason not recorded",
        "off-by-one in the stop-string min_tokens gate",
        "stop string searched in the whole text, not the newest",
        "max_model_len cap one token late",
        "finish one token past max_tokens",
    ),
    "outputs and counters": (
        "num_cached_tokens records the chunk size",
        "DELTA outputs carry every token so far",
        "a stop-string finish keeps the text past the stop string",
    ),
    "async scheduling": (
        "async: no early skip of a request whose batches in flight reach max_tokens",
        "async: a running request's output placeholders not counted in its tokens",
        "async: the token of a batch in flight is dropped when its request was preempted",
        "async: a sampled token's full block is not cached",
    ),
    "priority policy": (
        "priority: the waiting heap ignores priority",
        "priority: the victim is the highest-priority running request",
        "priority: an unscheduled victim's tokens stay charged to the budget",
    ),
    "preemption victim": (
        "preempt the first running request instead of the last",
        "a preempted request keeps its blocks",
        "no reset of num_computed_tokens on preemption",
    ),
}
"""Which part of the scheduler each mutant breaks."""


def part_of(name: str) -> str:
    """The part of the scheduler a mutant breaks."""
    for part, names in PARTS.items():
        if name in names:
            return part
    raise KeyError(f"mutant {name!r} is in no part of PARTS")
