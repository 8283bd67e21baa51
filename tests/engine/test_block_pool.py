"""The block pool and free queue on their own."""

from __future__ import annotations

import pytest

from minivllm.core.block_pool import BlockPool
from minivllm.core.block_pool import FreeKVCacheBlockQueue
from minivllm.core.block_pool import KVCacheBlock


def ids(blocks: list[KVCacheBlock]) -> list[int]:
    return [b.block_id for b in blocks]


def test_block_zero_is_the_reserved_null_block() -> None:
    pool = BlockPool(5, enable_caching=False)
    assert pool.null_block.block_id == 0 and pool.null_block.is_null
    assert pool.get_num_free_blocks() == 4
    assert ids(pool.free_block_queue.get_all_free_blocks()) == [1, 2, 3, 4]


def test_allocation_from_head_free_to_tail() -> None:
    pool = BlockPool(6, enable_caching=False)
    a = pool.get_new_blocks(2)
    b = pool.get_new_blocks(2)
    assert ids(a) == [1, 2] and ids(b) == [3, 4]
    pool.free_blocks(reversed(a))
    assert ids(pool.free_block_queue.get_all_free_blocks()) == [5, 2, 1]
    assert all(x.ref_cnt == 0 for x in a) and all(x.ref_cnt == 1 for x in b)


def test_touch_pulls_a_free_cached_block_out_of_the_queue() -> None:
    pool = BlockPool(4, enable_caching=True)
    (blk,) = pool.get_new_blocks(1)
    pool.cache_full_blocks([blk], [1234], 0, 1)
    pool.free_blocks([blk])
    assert pool.get_cached_block(1234) is blk and pool.get_num_free_blocks() == 3
    pool.touch([blk])
    assert blk.ref_cnt == 1 and pool.get_num_free_blocks() == 2
    pool.free_blocks([blk])
    assert pool.get_num_free_blocks() == 3


def test_reallocating_a_cached_block_evicts_its_hash() -> None:
    pool = BlockPool(2, enable_caching=True)
    (blk,) = pool.get_new_blocks(1)
    pool.cache_full_blocks([blk], [99], 0, 1)
    pool.free_blocks([blk])
    (again,) = pool.get_new_blocks(1)
    assert again is blk and blk.block_hash is None and pool.get_cached_block(99) is None


def test_shared_block_stays_out_of_the_queue_until_the_last_user_frees_it() -> None:
    pool = BlockPool(3, enable_caching=True)
    (blk,) = pool.get_new_blocks(1)
    pool.touch([blk])
    pool.free_blocks([blk])
    assert pool.get_num_free_blocks() == 1
    pool.free_blocks([blk])
    assert pool.get_num_free_blocks() == 2


def test_queue_refuses_more_than_it_holds() -> None:
    queue = FreeKVCacheBlockQueue([KVCacheBlock(i) for i in range(3)])
    with pytest.raises(ValueError, match="Cannot take 4 blocks"):
        queue.popleft_n(4)
    with pytest.raises(ValueError, match="Cannot get 9 free blocks"):
        BlockPool(3, enable_caching=False).get_new_blocks(9)
