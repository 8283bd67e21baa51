"""The paged KV cache: K and V arrays split into blocks, addressed through block tables."""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

Array = NDArray[np.floating[Any]]


class PagedKVCache:
    """K and V of every layer as ``[num_layers, num_blocks, block_size, num_heads, head_dim]``.

    Block ids are the engine's ``KVCacheBlock.block_id``; block 0 is the null
    block and is never written. A token's slot is
    ``block_id * block_size + position % block_size``.
    """

    def __init__(
        self,
        num_layers: int,
        num_blocks: int,
        block_size: int,
        num_heads: int,
        head_dim: int,
        dtype: type[np.floating[Any]] = np.float32,
    ) -> None:
        shape = (num_layers, num_blocks, block_size, num_heads, head_dim)
        self.block_size = block_size
        self.key: Array = np.zeros(shape, dtype=dtype)
        self.value: Array = np.zeros(shape, dtype=dtype)
        # Views with the slots of all blocks in one axis, so a write is one scatter.
        flat = (num_layers, num_blocks * block_size, num_heads, head_dim)
        self._key_slots = self.key.reshape(flat)
        self._value_slots = self.value.reshape(flat)

    def write(self, layer: int, slot_mapping: NDArray[np.int64], key: Array, value: Array) -> None:
        """Store keys and values (``[num_tokens, num_heads, head_dim]``) in their slots."""
        self._key_slots[layer, slot_mapping] = key
        self._value_slots[layer, slot_mapping] = value

    def gather(self, layer: int, block_tables: NDArray[np.int64]) -> tuple[Array, Array]:
        """Keys and values of each block table row, ``[rows, num_blocks * block_size, heads, dim]``.

        Padding entries of a block table point at the null block; the caller masks them.
        """
        rows, num_blocks = block_tables.shape
        key = np.take(self.key[layer], block_tables, axis=0)
        value = np.take(self.value[layer], block_tables, axis=0)
        shape = (rows, num_blocks * self.block_size, *key.shape[3:])
        return key.reshape(shape), value.reshape(shape)
