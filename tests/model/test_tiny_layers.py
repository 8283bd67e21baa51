"""The tiny model's building blocks."""

from __future__ import annotations

import numpy as np

from minivllm.model_executor.tiny_attention import causal_attention
from minivllm.model_executor.tiny_layers import apply_rotary
from minivllm.model_executor.tiny_layers import masked_softmax
from minivllm.model_executor.tiny_layers import rms_norm
from minivllm.model_executor.tiny_layers import rotary_tables

RNG = np.random.default_rng(11)


def test_rms_norm_gives_unit_root_mean_square() -> None:
    x = RNG.standard_normal((5, 64)) * 7
    out = rms_norm(x, np.ones(64), eps=0.0)
    np.testing.assert_allclose(np.sqrt((out**2).mean(axis=1)), 1.0)


def test_rotary_scores_depend_only_on_the_distance() -> None:
    q, k = RNG.standard_normal((1, 2, 16)), RNG.standard_normal((1, 2, 16))

    def score(q_pos: int, k_pos: int) -> np.ndarray:
        positions = np.array([q_pos, k_pos])
        cos, sin = rotary_tables(positions, 16, 10000.0, np.float64)
        both = apply_rotary(np.concatenate((q, k)), cos, sin)
        return (both[0] * both[1]).sum(axis=-1)

    np.testing.assert_allclose(score(3, 1), score(103, 101))
    assert not np.allclose(score(3, 1), score(3, 2))


def test_rotary_preserves_norms() -> None:
    x = RNG.standard_normal((6, 4, 16))
    cos, sin = rotary_tables(np.arange(6) * 37, 16, 10000.0, np.float64)
    np.testing.assert_allclose(
        np.linalg.norm(apply_rotary(x, cos, sin), axis=-1), np.linalg.norm(x, axis=-1)
    )


def test_masked_softmax_gives_masked_entries_zero() -> None:
    scores = RNG.standard_normal((3, 4))
    mask = np.array([[True, False, True, False]] * 3)
    probs = masked_softmax(scores, mask)
    assert (probs[:, ~mask[0]] == 0).all()
    np.testing.assert_allclose(probs.sum(axis=1), 1.0)


def test_causal_attention_first_token_sees_only_itself() -> None:
    q, k, v = (RNG.standard_normal((4, 2, 8)) for _ in range(3))
    out = causal_attention(q, k, v)
    np.testing.assert_allclose(out[0], v[0])
    # Later keys do not change earlier outputs.
    k2, v2 = k.copy(), v.copy()
    k2[3], v2[3] = 0.0, 0.0
    np.testing.assert_allclose(causal_attention(q, k2, v2)[:3], out[:3])
