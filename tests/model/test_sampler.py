"""The sampler: greedy, temperature, top-k, top-p, min_tokens masking, per-request generators."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest

from minivllm.model_executor.sampler import SamplingMetadata
from minivllm.model_executor.sampler import sample

VOCAB = 8
NUM_DRAWS = 4000


def _metadata(
    rows: int,
    temperature: float = 1.0,
    top_k: int = VOCAB,
    top_p: float = 1.0,
    uniforms: np.ndarray | None = None,
    banned: Sequence[tuple[int, int]] = (),
) -> SamplingMetadata:
    return SamplingMetadata(
        temperature=np.full(rows, temperature),
        top_k=np.full(rows, top_k, dtype=np.int64),
        top_p=np.full(rows, top_p),
        uniforms=np.zeros(rows) if uniforms is None else uniforms,
        banned_rows=np.array([r for r, _ in banned], dtype=np.int64),
        banned_tokens=np.array([t for _, t in banned], dtype=np.int64),
    )


def _frequencies(logits: np.ndarray, **kwargs: Any) -> np.ndarray:
    # Evenly spaced draws turn the inverse-CDF sampler into an exact histogram.
    uniforms = (np.arange(NUM_DRAWS) + 0.5) / NUM_DRAWS
    rows = np.tile(logits, (NUM_DRAWS, 1))
    tokens = sample(rows, _metadata(NUM_DRAWS, uniforms=uniforms, **kwargs))
    return np.bincount(tokens, minlength=VOCAB) / NUM_DRAWS


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max())
    return e / e.sum()


LOGITS = np.random.default_rng(5).standard_normal(VOCAB)


def test_temperature_zero_is_argmax() -> None:
    logits = np.random.default_rng(0).standard_normal((5, VOCAB))
    tokens = sample(logits, _metadata(5, temperature=0.0, uniforms=np.full(5, 0.99)))
    assert tokens.tolist() == np.argmax(logits, axis=1).tolist()


@pytest.mark.parametrize("temperature", [0.5, 1.0, 2.0])
def test_temperature_scales_the_distribution(temperature: float) -> None:
    got = _frequencies(LOGITS, temperature=temperature)
    np.testing.assert_allclose(got, _softmax(LOGITS / temperature), atol=2 / NUM_DRAWS)


def test_top_k_keeps_the_k_most_likely_tokens() -> None:
    top3 = np.argsort(-LOGITS)[:3]
    expected = np.zeros(VOCAB)
    expected[top3] = _softmax(LOGITS[top3])
    np.testing.assert_allclose(_frequencies(LOGITS, top_k=3), expected, atol=2 / NUM_DRAWS)


def test_top_p_keeps_the_smallest_set_reaching_p() -> None:
    probs = _softmax(LOGITS)
    kept, mass = [], 0.0
    for token in np.argsort(-probs):
        kept.append(token)
        mass += probs[token]
        if mass >= 0.7:
            break
    expected = np.zeros(VOCAB)
    expected[kept] = probs[kept] / probs[kept].sum()
    assert 1 < len(kept) < VOCAB
    np.testing.assert_allclose(_frequencies(LOGITS, top_p=0.7), expected, atol=2 / NUM_DRAWS)


@pytest.mark.parametrize("temperature", [0.0, 1.0])
def test_banned_tokens_are_never_sampled(temperature: float) -> None:
    favourite = int(np.argmax(LOGITS))
    banned = [(row, favourite) for row in range(NUM_DRAWS)]
    got = _frequencies(LOGITS, temperature=temperature, banned=banned)
    assert got[favourite] == 0
    assert got.sum() == pytest.approx(1.0)
