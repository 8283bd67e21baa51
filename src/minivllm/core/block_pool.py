"""The paged KV cache's block pool: ref-counted blocks, an LRU free queue, a prefix-cache map.

Mirrors ``vllm/v1/core/block_pool.py`` and ``kv_cache_utils.py``. Block 0 is
the reserved null block, so ``num_gpu_blocks - 1`` blocks are usable. Freed
blocks keep their hash in the free queue until they are handed out again, so
a later request (or a resumed one) can still hit them.
"""

from __future__ import annotations

from collections.abc import Iterable
from collections.abc import Sequence

from minivllm.core.journal import Journal


class KVCacheBlock:
    """One block of ``block_size`` token slots (vLLM's ``KVCacheBlock``)."""

    __slots__ = (
        "block_hash",
        "block_id",
        "is_null",
        "next_free_block",
        "prev_free_block",
        "ref_cnt",
    )

    def __init__(self, block_id: int) -> None:
        self.block_id = block_id
        self.ref_cnt = 0
        self.block_hash: int | None = None
        self.prev_free_block: KVCacheBlock | None = None
        self.next_free_block: KVCacheBlock | None = None
        self.is_null = False

    def __repr__(self) -> str:
        return f"KVCacheBlock(id={self.block_id}, ref_cnt={self.ref_cnt}, hash={self.block_hash})"


class FreeKVCacheBlockQueue:
    """A doubly linked list of free blocks: allocate from the head, free to the tail.

    A list would make removing a block hit by the prefix cache O(n); the links
    make every operation O(1).
    """

    def __init__(self, blocks: Sequence[KVCacheBlock]) -> None:
        self.num_free_blocks = len(blocks)
        self._head = KVCacheBlock(-1)
        self._tail = KVCacheBlock(-1)
        prev = self._head
        for block in blocks:
            prev.next_free_block = block
            block.prev_free_block = prev
            prev = block
        prev.next_free_block = self._tail
        self._tail.prev_free_block = prev

    def popleft(self) -> KVCacheBlock:
        """Take the block at the head (the least recently freed)."""
        block = self._head.next_free_block
        if block is None or block is self._tail:
            raise ValueError("No free blocks available")
        self.remove(block)
        return block

    def popleft_n(self, n: int) -> list[KVCacheBlock]:
        """Take ``n`` blocks from the head."""
        if n > self.num_free_blocks:
            raise ValueError(f"Cannot take {n} blocks from a queue of {self.num_free_blocks}")
        out = []
        block = self._head.next_free_block
        for _ in range(n):
            assert block is not None
            out.append(block)
            nxt = block.next_free_block
            block.prev_free_block = block.next_free_block = None
            block = nxt
        assert block is not None
        self._head.next_free_block = block
        block.prev_free_block = self._head
        self.num_free_blocks -= n
        return out

    def remove(self, block: KVCacheBlock) -> None:
        """Unlink ``block`` from wherever it sits (a prefix-cache hit on a free block)."""
        prev, nxt = block.prev_free_block, block.next_free_block
        if prev is None or nxt is None:
            raise RuntimeError(f"remove() called on a block not in the free queue: {block}")
        prev.next_free_block = nxt
        nxt.prev_free_block = prev
        block.prev_free_block = block.next_free_block = None
        self.num_free_blocks -= 1

    def append_n(self, blocks: Iterable[KVCacheBlock]) -> None:
        """Put blocks at the tail, in order (the first one is evicted first)."""
        last = self._tail.prev_free_block
        assert last is not None
        count = 0
        for block in blocks:
            last.next_free_block = block
            block.prev_free_block = last
            last = block
            count += 1
        last.next_free_block = self._tail
        self._tail.prev_free_block = last
        self.num_free_blocks += count

    # -- undo, for a failed step (see minivllm.core.journal) --------------------

    def unpopleft_n(self, blocks: list[KVCacheBlock]) -> None:
        """Put blocks taken by ``popleft_n`` back at the head, in their order."""
        if not blocks:
            return
        first = self._head.next_free_block
        assert first is not None
        prev = self._head
        for block in blocks:
            prev.next_free_block = block
            block.prev_free_block = prev
            prev = block
        prev.next_free_block = first
        first.prev_free_block = prev
        self.num_free_blocks += len(blocks)

    def unremove(self, block: KVCacheBlock, prev: KVCacheBlock, nxt: KVCacheBlock) -> None:
        """Put a block taken by ``remove`` back between the neighbours it had."""
        prev.next_free_block = block
        block.prev_free_block = prev
        block.next_free_block = nxt
        nxt.prev_free_block = block
        self.num_free_blocks += 1

    def unappend_n(self, blocks: list[KVCacheBlock]) -> None:
        """Take blocks put at the tail by ``append_n`` off again."""
        if not blocks:
            return
        before = blocks[0].prev_free_block
        assert before is not None
        for block in blocks:
            block.prev_free_block = block.next_free_block = None
        before.next_free_block = self._tail
        self._tail.prev_free_block = before
        self.num_free_blocks -= len(blocks)

    def get_all_free_blocks(self) -> list[KVCacheBlock]:
        """The free blocks from head to tail (for tests and debugging)."""
        out = []
        block = self._head.next_free_block
        while block is not None and block is not self._tail:
            out.append(block)
            block = block.next_free_block
        return out


class BlockPool:
    """All KV blocks, the free queue and the map from block hash to cached block."""

    def __init__(
        self, num_gpu_blocks: int, enable_caching: bool, journal: Journal | None = None
    ) -> None:
        self.journal = journal if journal is not None else Journal()
        self.num_gpu_blocks = num_gpu_blocks
        self.enable_caching = enable_caching
        self.blocks = [KVCacheBlock(i) for i in range(num_gpu_blocks)]
        self.free_block_queue = FreeKVCacheBlockQueue(self.blocks)
        # A hash may map to several blocks when two requests computed the same
        # block at once; lookups take the first, as vLLM's BlockHashToBlockMap does.
        self.cached_block_hash_to_block: dict[int, dict[int, KVCacheBlock]] = {}
        self.null_block = self.free_block_queue.popleft()
        self.null_block.is_null = True

    def get_num_free_blocks(self) -> int:
        """Blocks in the free queue (cached-but-unused blocks count as free)."""
        return self.free_block_queue.num_free_blocks

    @property
    def num_usable_blocks(self) -> int:
        """All blocks but the null block."""
        return self.num_gpu_blocks - 1

    def get_cached_block(self, block_hash: int) -> KVCacheBlock | None:
        """The block holding ``block_hash``'s tokens, if any is cached."""
        blocks = self.cached_block_hash_to_block.get(block_hash)
        if not blocks:
            return None
        return next(iter(blocks.values()))

    def cache_full_blocks(
        self,
        blocks: list[KVCacheBlock],
        block_hashes: list[int],
        num_cached_blocks: int,
        num_full_blocks: int,
    ) -> None:
        """Register ``blocks[num_cached_blocks:num_full_blocks]`` under their hashes."""
        table = self.cached_block_hash_to_block
        notes = self.journal.entries
        for i in range(num_cached_blocks, num_full_blocks):
            block = blocks[i]
            if block.is_null or block.block_hash is not None:
                continue
            block_hash = block_hashes[i]
            block.block_hash = block_hash
            table.setdefault(block_hash, {})[block.block_id] = block
            if notes is not None:
                notes.append((self._uncache, block))

    def get_new_blocks(self, num_blocks: int) -> list[KVCacheBlock]:
        """Take ``num_blocks`` from the head of the free queue, evicting their cached hashes."""
        if num_blocks > self.free_block_queue.num_free_blocks:
            raise ValueError(f"Cannot get {num_blocks} free blocks from the pool")
        ret = self.free_block_queue.popleft_n(num_blocks)
        notes = self.journal.entries
        if notes is not None:
            # Blocks in the free queue have no user: undoing sets ref_cnt back to 0.
            notes.append((self._unget_new_blocks, ret))
        if self.enable_caching:
            for block in ret:
                self._maybe_evict_cached_block(block)
                block.ref_cnt += 1
        else:
            for block in ret:
                block.ref_cnt += 1
        return ret

    def _unget_new_blocks(self, blocks: list[KVCacheBlock]) -> None:
        for block in blocks:
            block.ref_cnt = 0
        self.free_block_queue.unpopleft_n(blocks)

    def _uncache(self, block: KVCacheBlock) -> None:
        block_hash = block.block_hash
        assert block_hash is not None
        blocks = self.cached_block_hash_to_block[block_hash]
        del blocks[block.block_id]
        if not blocks:
            del self.cached_block_hash_to_block[block_hash]
        block.block_hash = None

    def _unevict(
        self, block: KVCacheBlock, block_hash: int, blocks: dict[int, KVCacheBlock]
    ) -> None:
        # ``blocks`` is the hash's table entry as it was, order included: the
        # first block of an entry is the one a prefix-cache hit takes.
        self.cached_block_hash_to_block[block_hash] = blocks
        block.block_hash = block_hash

    def _maybe_evict_cached_block(self, block: KVCacheBlock) -> bool:
        block_hash = block.block_hash
        if block_hash is None:
            return False
        blocks = self.cached_block_hash_to_block.get(block_hash)
        if blocks is None or block.block_id not in blocks:
            return False
        notes = self.journal.entries
        if notes is not None:
            notes.append((self._unevict, block, block_hash, dict(blocks)))
        del blocks[block.block_id]
        if not blocks:
            del self.cached_block_hash_to_block[block_hash]
        block.block_hash = None
        return True

    def touch(self, blocks: Sequence[KVCacheBlock]) -> None:
        """Take a reference on prefix-cache hits, pulling free ones out of the free queue."""
        notes = self.journal.entries
        queue = self.free_block_queue
        for block in blocks:
            if block.ref_cnt == 0 and not block.is_null:
                if notes is not None:
                    prev, nxt = block.prev_free_block, block.next_free_block
                    notes.append((queue.unremove, block, prev, nxt))
                queue.remove(block)
            block.ref_cnt += 1
            if notes is not None:
                notes.append((_unref, block))

    def free_blocks(self, ordered_blocks: Iterable[KVCacheBlock]) -> None:
        """Drop a reference on each block; those now unused go to the free queue in order."""
        blocks = list(ordered_blocks)
        for block in blocks:
            block.ref_cnt -= 1
        freed = [b for b in blocks if b.ref_cnt == 0 and not b.is_null]
        self.free_block_queue.append_n(freed)
        notes = self.journal.entries
        if notes is not None:
            notes.append((_unfree, self.free_block_queue, blocks, freed))


def _unref(block: KVCacheBlock) -> None:
    block.ref_cnt -= 1


def _unfree(
    queue: FreeKVCacheBlockQueue, blocks: list[KVCacheBlock], freed: list[KVCacheBlock]
) -> None:
    queue.unappend_n(freed)
    for block in blocks:
        block.ref_cnt += 1
