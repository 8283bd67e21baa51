"""Per-request KV block bookkeeping on top of the block pool (vLLM's ``KVCacheManager``).

One full-attention group, so vLLM's coordinator and single-type manager fold
into this class; the method names and the order of checks are vLLM's.
"""

from __future__ import annotations

from minivllm.bus import EventBus
from minivllm.core.block_pool import BlockPool
from minivllm.core.block_pool import KVCacheBlock
from minivllm.core.journal import Journal
from minivllm.events import BlocksAllocated
from minivllm.events import BlocksCached
from minivllm.events import BlocksFreed
from minivllm.request import Request

NONE_HASH = 0
"""The parent hash of a request's first block."""


def cdiv(a: int, b: int) -> int:
    """Ceiling division."""
    return -(a // -b)


def hash_block_tokens(parent_block_hash: int, block_token_ids: tuple[int, ...]) -> int:
    """Chained hash of one full block: it names the block's tokens *and* everything before.

    Python's tuple hash of ints is deterministic across runs (no hash
    randomisation applies to ints), which keeps logs reproducible.
    """
    return hash((parent_block_hash, block_token_ids))


class KVCacheManager:
    """Gives requests KV slots, finds prefix-cache hits and frees blocks."""

    def __init__(
        self,
        num_gpu_blocks: int,
        block_size: int,
        max_model_len: int,
        enable_caching: bool,
        bus: EventBus | None = None,
        journal: Journal | None = None,
    ) -> None:
        self.journal = journal if journal is not None else Journal()
        self.block_size = block_size
        self.max_model_len = max_model_len
        self.enable_caching = enable_caching
        self.block_pool = BlockPool(num_gpu_blocks, enable_caching, self.journal)
        self.req_to_blocks: dict[str, list[KVCacheBlock]] = {}
        # Number of leading blocks of each request already registered in the
        # prefix cache; as in vLLM, its presence marks a request that has been
        # allocated since its last free.
        self.num_cached_block: dict[str, int] = {}
        self.bus = bus if bus is not None else EventBus()
        self._on_allocated = self.bus.channel(BlocksAllocated)
        self._on_freed = self.bus.channel(BlocksFreed)
        self._on_cached = self.bus.channel(BlocksCached)

    def _update_block_hashes(self, request: Request) -> list[int]:
        hashes = request.block_hashes
        num_full = request.num_tokens // self.block_size
        if len(hashes) < num_full:
            self.journal.save_length(hashes)
            tokens = request.all_token_ids
            bs = self.block_size
            parent = hashes[-1] if hashes else NONE_HASH
            for i in range(len(hashes), num_full):
                parent = hash_block_tokens(parent, tuple(tokens[i * bs : (i + 1) * bs]))
                hashes.append(parent)
        return hashes

    def get_computed_blocks(self, request: Request) -> tuple[list[KVCacheBlock], int]:
        """The longest run of cached full blocks that prefixes the request, and its tokens.

        Never the whole sequence: the last token must be computed to get logits.
        """
        if not self.enable_caching:
            return [], 0
        hashes = self._update_block_hashes(request)
        max_cache_hit_length = request.num_tokens - 1
        pool = self.block_pool
        computed: list[KVCacheBlock] = []
        for block_hash in hashes[: max_cache_hit_length // self.block_size]:
            block = pool.get_cached_block(block_hash)
            if block is None:
                break
            computed.append(block)
        return computed, len(computed) * self.block_size

    def get_num_blocks_to_allocate(
        self, request_id: str, num_tokens: int, new_computed_blocks: list[KVCacheBlock]
    ) -> int:
        """Blocks that must come out of the free queue to give ``num_tokens`` slots.

        A prefix-cache hit on a block with no other user sits in the free queue,
        so taking it costs a free block just as a fresh block does.
        """
        num_required = cdiv(num_tokens, self.block_size)
        num_new = (
            num_required - len(new_computed_blocks) - len(self.req_to_blocks.get(request_id, ()))
        )
        num_evictable = sum(1 for b in new_computed_blocks if b.ref_cnt == 0 and not b.is_null)
        return max(num_new, 0) + num_evictable

    def allocate_slots(
        self,
        request: Request,
        num_new_tokens: int,
        num_new_computed_tokens: int = 0,
        new_computed_blocks: list[KVCacheBlock] | None = None,
        full_sequence_must_fit: bool = False,
    ) -> list[KVCacheBlock] | None:
        """Give ``request`` slots for ``num_new_tokens`` more tokens; None if they do not fit.

        With ``full_sequence_must_fit`` the request's whole ``num_tokens`` (capped
        at ``max_model_len``) must fit, not just this chunk: vLLM's admission gate
        against over-admitting under chunked prefill.
        """
        if num_new_tokens <= 0:
            raise ValueError(f"num_new_tokens must be greater than 0, got {num_new_tokens}")
        request_id = request.request_id
        req_blocks = self.req_to_blocks.get(request_id)
        if req_blocks is not None and not new_computed_blocks and not full_sequence_must_fit:
            # Fast path, taken by every decode: a request that holds blocks
            # gets no new cache hits and usually needs no new block at all.
            num_tokens_need_slot = request.num_computed_tokens + num_new_tokens
            if num_tokens_need_slot > self.max_model_len:
                num_tokens_need_slot = self.max_model_len
            num_new_blocks = -(num_tokens_need_slot // -self.block_size) - len(req_blocks)
            if num_new_blocks <= 0:
                if self.enable_caching:
                    self.cache_blocks(request, min(num_tokens_need_slot, request.num_tokens))
                return []
        journal = self.journal
        computed_blocks = new_computed_blocks or []
        pool = self.block_pool
        total_computed_tokens = min(
            request.num_computed_tokens + num_new_computed_tokens, self.max_model_len
        )
        if full_sequence_must_fit:
            full_num_tokens = min(request.num_tokens, self.max_model_len)
            needed = self.get_num_blocks_to_allocate(request_id, full_num_tokens, computed_blocks)
            if needed > pool.free_block_queue.num_free_blocks:
                return None

        num_tokens_need_slot = min(total_computed_tokens + num_new_tokens, self.max_model_len)
        if req_blocks is not None and not computed_blocks:
            # Fast path for a running request: no new hits, only missing blocks.
            num_new_blocks = cdiv(num_tokens_need_slot, self.block_size) - len(req_blocks)
            if num_new_blocks > pool.free_block_queue.num_free_blocks:
                return None
        else:
            needed = self.get_num_blocks_to_allocate(
                request_id, num_tokens_need_slot, computed_blocks
            )
            if needed > pool.free_block_queue.num_free_blocks:
                return None
            if req_blocks is None:
                journal.save_mapping(self.req_to_blocks)
                req_blocks = self.req_to_blocks[request_id] = []
            if computed_blocks:
                pool.touch(computed_blocks)
                journal.save_length(req_blocks)
                req_blocks.extend(computed_blocks)
                journal.save_mapping(self.num_cached_block)
                self.num_cached_block[request_id] = len(req_blocks)
            num_new_blocks = cdiv(num_tokens_need_slot, self.block_size) - len(req_blocks)

        new_blocks = pool.get_new_blocks(num_new_blocks) if num_new_blocks > 0 else []
        if new_blocks:
            journal.save_length(req_blocks)
            req_blocks.extend(new_blocks)
        if (new_blocks or computed_blocks) and self._on_allocated.handlers:
            self._on_allocated.emit(
                request_id,
                len(new_blocks),
                len(computed_blocks),
                tuple(b.block_id for b in new_blocks),
                tuple(b.block_id for b in computed_blocks),
                tuple(b.block_hash for b in computed_blocks if b.block_hash is not None),
            )

        if self.enable_caching:
            num_tokens_to_cache = min(total_computed_tokens + num_new_tokens, request.num_tokens)
            self.cache_blocks(request, num_tokens_to_cache)
        return new_blocks

    def cache_blocks(self, request: Request, num_tokens: int) -> None:
        """Register the request's newly full blocks in the prefix cache, if enabled."""
        if not self.enable_caching:
            return
        request_id = request.request_id
        num_cached = self.num_cached_block.get(request_id, 0)
        num_full = num_tokens // self.block_size
        if num_cached >= num_full:
            return
        hashes = self._update_block_hashes(request)
        blocks = self.req_to_blocks[request_id]
        new = [b for b in blocks[num_cached:num_full] if b.block_hash is None and not b.is_null]
        self.block_pool.cache_full_blocks(blocks, hashes, num_cached, num_full)
        self.journal.save_mapping(self.num_cached_block)
        self.num_cached_block[request_id] = num_full
        if new and self._on_cached.handlers:
            self._emit_cached(request_id, new)

    def _emit_cached(self, request_id: str, blocks: list[KVCacheBlock]) -> None:
        ids = tuple(b.block_id for b in blocks)
        self._on_cached.emit(request_id, ids, tuple(b.block_hash or 0 for b in blocks))

    def free(self, request: Request) -> None:
        """Release all of the request's blocks, tail first, so shared prefixes live longest."""
        request_id = request.request_id
        self.journal.save_mapping(self.req_to_blocks)
        self.journal.save_mapping(self.num_cached_block)
        blocks = self.req_to_blocks.pop(request_id, None)
        self.num_cached_block.pop(request_id, None)
        if blocks is None:
            return
        self.block_pool.free_blocks(reversed(blocks))
        if self._on_freed.handlers:
            self._on_freed.emit(request_id, len(blocks), tuple(b.block_id for b in blocks))

    def get_block_ids(self, request_id: str) -> list[int]:
        """The request's block table: physical block ids in logical order."""
        return [b.block_id for b in self.req_to_blocks.get(request_id, ())]

    def get_num_used_blocks(self) -> int:
        """Usable blocks not in the free queue."""
        return self.block_pool.num_usable_blocks - self.block_pool.get_num_free_blocks()
