"""Attention for one step's flat batch, reading every request's context through its block table.

The step's tokens arrive as one flat array (request after request). For
attention each request's queries are padded to a common length so that all
requests are one batched matmul; decodes (one query each) are padded
separately from prefill chunks so a long chunk does not pad every decode.
"""

from __future__ import annotations

from typing import Any

import attrs
import numpy as np
from numpy.typing import NDArray

from minivllm.model_executor.tiny_kv_cache import PagedKVCache
from minivllm.model_executor.tiny_layers import masked_softmax

Array = NDArray[np.floating[Any]]
IntArray = NDArray[np.int64]


@attrs.frozen(eq=False)
class PaddedGroup:
    """Requests padded to a common query length for one batched attention call.

    ``token_index[b, j]`` is the flat-batch row of request ``b``'s ``j``-th
    query (clipped to its last query where ``j`` is padding); ``mask`` says
    which cached positions each query may attend to.
    """

    token_index: IntArray
    query_valid: NDArray[np.bool_]
    block_tables: IntArray
    mask: NDArray[np.bool_]


def pad_group(
    query_start: IntArray,
    query_lens: IntArray,
    seq_lens: IntArray,
    block_tables: IntArray,
    block_size: int,
) -> PaddedGroup:
    """Pad requests (given by their first flat row, query count, context length, block table)."""
    offsets = np.arange(int(query_lens.max()))
    query_valid = offsets[None, :] < query_lens[:, None]
    clipped = np.minimum(offsets[None, :], query_lens[:, None] - 1)
    token_index = query_start[:, None] + clipped
    # A query at position p sees the cached positions 0..p of its own request.
    query_pos = (seq_lens - query_lens)[:, None] + clipped
    num_blocks = -(-int(seq_lens.max()) // block_size)
    key_pos = np.arange(num_blocks * block_size)
    mask = key_pos[None, None, :] <= query_pos[:, :, None]
    return PaddedGroup(
        token_index=token_index,
        query_valid=query_valid,
        block_tables=block_tables[:, :num_blocks],
        mask=mask[:, None, :, :],
    )


@attrs.frozen(eq=False)
class AttentionMetadata:
    """Where this step's tokens go in the paged cache and how requests are grouped to attend."""

    slot_mapping: IntArray
    groups: tuple[PaddedGroup, ...]


def build_attention_metadata(
    query_lens: IntArray,
    seq_lens: IntArray,
    block_tables: IntArray,
    slot_mapping: IntArray,
    block_size: int,
) -> AttentionMetadata:
    """Group the step's requests (one query each, or more) and pad each group."""
    query_start = np.concatenate(([0], np.cumsum(query_lens)[:-1])).astype(np.int64)
    groups = []
    for selected in (query_lens == 1, query_lens > 1):
        if selected.any():
            group = pad_group(
                query_start[selected],
                query_lens[selected],
                seq_lens[selected],
                block_tables[selected],
                block_size,
            )
            groups.append(group)
    return AttentionMetadata(slot_mapping=slot_mapping, groups=tuple(groups))


def paged_attention(
    query: Array, kv_cache: PagedKVCache, layer: int, metadata: AttentionMetadata
) -> Array:
    """Attention output for every flat-batch query (``[num_tokens, num_heads, head_dim]``).

    The step's own keys and values must already be in the cache: a request may
    attend to blocks another request wrote in this same step (a prefix-cache hit).
    """
    out = np.empty_like(query)
    scale = query.shape[-1] ** -0.5
    for group in metadata.groups:
        key, value = kv_cache.gather(layer, group.block_tables)  # [B, C, H, D]
        q = query[group.token_index].transpose(0, 2, 1, 3)  # [B, H, Q, D]
        scores = (q @ key.transpose(0, 2, 3, 1)) * scale  # [B, H, Q, C]
        probs = masked_softmax(scores, group.mask)
        attended = (probs @ value.transpose(0, 2, 1, 3)).transpose(0, 2, 1, 3)  # [B, Q, H, D]
        out[group.token_index[group.query_valid]] = attended[group.query_valid]
    return out


def causal_attention(query: Array, key: Array, value: Array) -> Array:
    """Plain causal self-attention over one whole sequence, with no cache (the reference)."""
    scale = query.shape[-1] ** -0.5
    q, k, v = (x.transpose(1, 0, 2) for x in (query, key, value))  # [H, T, D]
    scores = (q @ k.transpose(0, 2, 1)) * scale
    num_tokens = query.shape[0]
    mask = np.tril(np.ones((num_tokens, num_tokens), dtype=bool))
    result: Array = (masked_softmax(scores, mask) @ v).transpose(1, 0, 2)
    return result
