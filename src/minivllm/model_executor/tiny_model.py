"""The tiny decoder-only transformer's forward pass, over the paged cache or a plain sequence."""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from minivllm.model_executor.tiny_attention import AttentionMetadata
from minivllm.model_executor.tiny_attention import causal_attention
from minivllm.model_executor.tiny_attention import paged_attention
from minivllm.model_executor.tiny_kv_cache import PagedKVCache
from minivllm.model_executor.tiny_layers import apply_rotary
from minivllm.model_executor.tiny_layers import rms_norm
from minivllm.model_executor.tiny_layers import rotary_tables
from minivllm.model_executor.tiny_layers import swiglu_mlp
from minivllm.model_executor.tiny_weights import TinyWeights

Array = NDArray[np.floating[Any]]
IntArray = NDArray[np.int64]

Attend = Callable[[int, Array, Array, Array], Array]
"""``attend(layer, q, k, v)``: attention output for the step's queries, ``[tokens, heads, dim]``."""


class TinyModel:
    """Pre-norm transformer blocks (RMSNorm, rotary multi-head attention, SwiGLU) over bytes.

    Computes in ``dtype``: float32 is about twice as fast; float64 makes
    results that differ only in summation order agree to ~1e-13.
    """

    def __init__(self, weights: TinyWeights, dtype: type[np.floating[Any]] = np.float32) -> None:
        self.weights = weights.astype(dtype)
        self.config = weights.config
        self.dtype = dtype

    def hidden_states(self, token_ids: IntArray, positions: IntArray, attend: Attend) -> Array:
        """The final-normed hidden state of every token (``[num_tokens, d_model]``).

        ``attend`` decides where keys and values come from; everything else is
        the same for the paged and the reference pass, so they can only differ
        in attention.
        """
        w, c = self.weights, self.config
        num_tokens = token_ids.shape[0]
        heads = (num_tokens, c.num_heads, c.head_dim)
        cos, sin = rotary_tables(positions, c.head_dim, c.rope_theta, self.dtype)
        x = w.embed[token_ids]
        for layer in range(c.num_layers):
            qkv = rms_norm(x, w.attn_norm[layer], c.norm_eps) @ w.wqkv[layer]
            q, k, v = (part.reshape(heads) for part in np.split(qkv, 3, axis=1))
            attended = attend(layer, apply_rotary(q, cos, sin), apply_rotary(k, cos, sin), v)
            x = x + attended.reshape(num_tokens, c.d_model) @ w.wo[layer]
            h = rms_norm(x, w.mlp_norm[layer], c.norm_eps)
            x = x + swiglu_mlp(h, w.w_gate_up[layer], w.w_down[layer])
        return rms_norm(x, w.final_norm, c.norm_eps)

    def compute_logits(self, hidden_states: Array) -> Array:
        """Next-token logits (``[rows, vocab_size]``) for the given hidden states."""
        logits: Array = hidden_states @ self.weights.lm_head
        return logits

    def forward_paged(
        self,
        token_ids: IntArray,
        positions: IntArray,
        kv_cache: PagedKVCache,
        metadata: AttentionMetadata,
    ) -> Array:
        """Hidden states of one step's flat batch; K/V go to the cache, context comes from it."""

        def attend(layer: int, q: Array, k: Array, v: Array) -> Array:
            # Write first: this step's queries attend to this step's keys too.
            kv_cache.write(layer, metadata.slot_mapping, k, v)
            return paged_attention(q, kv_cache, layer, metadata)

        return self.hidden_states(token_ids, positions, attend)

    def reference_logits(self, token_ids: Sequence[int]) -> Array:
        """Logits at every position of one whole sequence, with no cache: the ground truth."""
        ids = np.asarray(token_ids, dtype=np.int64)
        positions = np.arange(ids.shape[0], dtype=np.int64)

        def attend(layer: int, q: Array, k: Array, v: Array) -> Array:
            return causal_attention(q, k, v)

        return self.compute_logits(self.hidden_states(ids, positions, attend))
