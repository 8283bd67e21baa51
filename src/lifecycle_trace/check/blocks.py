"""Rules on the KV block pool, from the block ids and hashes the engine's events carry.

:class:`BlockRules` keeps the pool as the log implies it: the free list in
LRU order (block 0 is the null block; blocks ``1 .. num_gpu_blocks - 1`` start
free, in id order), each block's reference count, and the hash each block holds
in the prefix cache. The blocks each request holds are the audit fold's
(:class:`~lifecycle_trace.fold.audit.AuditFold`). Two rules, named in :data:`BLOCK_RULES`:

- ``lru_order``: fresh blocks come from the head of the free list; a request's
  blocks go back to its tail last block first (so shared prefixes live
  longest), each once nobody holds it; a prefix-cache hit on a free block takes
  it out of the list; a request frees exactly the blocks it was given;
- ``prefix_cache_hit``: a hit is a block that holds, right then, the hash it was
  found under: a block handed out fresh loses its hash until it is cached
  again (no stale hash), and a block is cached only while its request holds it
  and only once per allocation.

A log whose allocation events carry no block ids (an older schema) is not
judged.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import ClassVar

from lifecycle_trace.check.decisions import Report
from lifecycle_trace.fold.audit import AuditFold
from minivllm.events import BlocksAllocated
from minivllm.events import BlocksCached
from minivllm.events import BlocksFreed
from minivllm.events import EngineConfigured
from minivllm.events import Event

__all__ = ["BLOCK_RULES", "BlockRules"]

BLOCK_RULES: Mapping[str, str] = MappingProxyType(
    {
        "lru_order": "fresh KV blocks come from the head of the free list; a request's blocks "
        "return to its tail last block first, once unused; a cache hit on a free block leaves "
        "the list; a request frees exactly the blocks it was given",
        "prefix_cache_hit": "a prefix-cache hit holds the hash it was found under (a block "
        "handed out fresh has none until cached again); a block is cached only while its "
        "request holds it, once per allocation",
    }
)
"""The block pool's rules, by name."""


class BlockRules:
    """A bus handler that keeps the block pool as the log tells it and judges each change.

    Call it with each event before ``fold`` takes it: the blocks each request
    holds are the fold's.
    """

    EVENT_TYPES: ClassVar[tuple[type[Event], ...]] = (
        EngineConfigured,
        BlocksAllocated,
        BlocksFreed,
        BlocksCached,
    )
    """The events it reads."""

    def __init__(self, report: Report, fold: AuditFold) -> None:
        self.report = report
        self.fold = fold
        self.free: list[int] = []
        self.ref_cnt: dict[int, int] = {}
        self.hash_of: dict[int, int] = {}
        self.judging = False

    def __call__(self, event: Event) -> None:
        """Apply one event to the pool, reporting what breaks a rule."""
        if isinstance(event, EngineConfigured):
            self.free = list(range(1, event.num_gpu_blocks))
            self.ref_cnt = dict.fromkeys(self.free, 0)
            self.judging = True
        elif not self.judging:
            return
        elif isinstance(event, BlocksAllocated):
            self._allocated(event)
        elif isinstance(event, BlocksFreed):
            self._freed(event)
        elif isinstance(event, BlocksCached):
            self._cached(event)

    def _allocated(self, e: BlocksAllocated) -> None:
        if len(e.block_ids) != e.num_new_blocks or len(e.cached_block_ids) != e.num_cached_blocks:
            self.judging = False  # an older log: no block ids to judge by
            return
        rid = e.request_id
        for block, block_hash in zip(e.cached_block_ids, e.cached_block_hashes, strict=False):
            held = self.hash_of.get(block)
            if held != block_hash:
                what = "no hash" if held is None else f"hash {held}"
                self.report(
                    "prefix_cache_hit",
                    rid,
                    e,
                    (e.seq,),
                    f"hit on block {block} under hash {block_hash}, but the block holds {what}",
                )
            if self.ref_cnt.get(block, 0) == 0 and block in self.free:
                self.free.remove(block)
            self.ref_cnt[block] = self.ref_cnt.get(block, 0) + 1
        fresh = list(e.block_ids)
        head = self.free[: len(fresh)]
        if fresh != head:
            self.report(
                "lru_order",
                rid,
                e,
                (e.seq,),
                f"given fresh blocks {fresh}, but the head of the free list was {head}",
            )
        for block in fresh:
            if block in self.free:
                self.free.remove(block)
            self.ref_cnt[block] = self.ref_cnt.get(block, 0) + 1
            self.hash_of.pop(block, None)  # evicted: it will hold new tokens

    def _freed(self, e: BlocksFreed) -> None:
        if len(e.block_ids) != e.num_blocks:
            self.judging = False
            return
        t = self.fold.known(e.request_id)
        table = [] if t is None else t.block_ids
        if list(e.block_ids) != table:
            self.report(
                "lru_order",
                e.request_id,
                e,
                (e.seq,),
                f"freed blocks {list(e.block_ids)}, but was given {table}",
            )
        for block in reversed(e.block_ids):
            self.ref_cnt[block] = self.ref_cnt.get(block, 0) - 1
        self.free.extend(b for b in reversed(e.block_ids) if self.ref_cnt.get(b) == 0)

    def _cached(self, e: BlocksCached) -> None:
        t = self.fold.state(e.request_id)
        table = [] if t is None else t.block_ids
        done = set() if t is None else t.cached_block_ids
        here: set[int] = set()  # the fold adds this event's blocks to `done` once it is judged
        for block, block_hash in zip(e.block_ids, e.block_hashes, strict=False):
            if block not in table or block in done or block in here:
                self.report(
                    "prefix_cache_hit",
                    e.request_id,
                    e,
                    (e.seq,),
                    f"cached block {block}, which it "
                    + ("does not hold" if block not in table else "had cached already"),
                )
            here.add(block)
            self.hash_of[block] = block_hash
