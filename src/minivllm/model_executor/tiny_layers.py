"""The tiny model's building blocks: RMSNorm, rotary positions, SwiGLU, softmax."""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

Array = NDArray[np.floating[Any]]


def rms_norm(x: Array, weight: Array, eps: float) -> Array:
    """Scale each row of ``x`` to unit root-mean-square, then by ``weight``."""
    normed: Array = x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps) * weight
    return normed


def rotary_tables(
    positions: NDArray[np.int64], head_dim: int, theta: float, dtype: type[np.floating[Any]]
) -> tuple[Array, Array]:
    """``cos`` and ``sin`` of each position's rotation angles, ``[num_tokens, head_dim/2]`` each."""
    # Angles in float64 whatever the model's dtype: positions reach the thousands.
    inv_freq = theta ** (-np.arange(0, head_dim, 2, dtype=np.float64) / head_dim)
    angles = positions.astype(np.float64)[:, None] * inv_freq[None, :]
    return np.cos(angles).astype(dtype), np.sin(angles).astype(dtype)


def apply_rotary(x: Array, cos: Array, sin: Array) -> Array:
    """Rotate ``x`` (``[num_tokens, num_heads, head_dim]``) by its positions' angles.

    The two halves of each head form the pairs (GPT-NeoX layout), so one slice
    does the whole rotation.
    """
    half = x.shape[-1] // 2
    x1, x2 = x[..., :half], x[..., half:]
    c, s = cos[:, None, :], sin[:, None, :]
    return np.concatenate((x1 * c - x2 * s, x2 * c + x1 * s), axis=-1)


def silu(x: Array) -> Array:
    """``x * sigmoid(x)``."""
    return x / (1.0 + np.exp(-x))


def swiglu_mlp(x: Array, w_gate_up: Array, w_down: Array) -> Array:
    """The gated feed-forward block: ``(silu(x W_gate) * (x W_up)) W_down``."""
    gate_up = x @ w_gate_up
    d_ff = w_down.shape[0]
    return (silu(gate_up[:, :d_ff]) * gate_up[:, d_ff:]) @ w_down


def masked_softmax(scores: Array, mask: NDArray[np.bool_]) -> Array:
    """Softmax over the last axis where ``mask`` is true; masked entries get probability 0.

    Every row must keep at least one entry.
    """
    scores = np.where(mask, scores, -np.inf)
    scores = np.exp(scores - scores.max(axis=-1, keepdims=True))
    probs: Array = scores / scores.sum(axis=-1, keepdims=True)
    return probs
