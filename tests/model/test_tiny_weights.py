"""Tiny-model weights: deterministic from a seed, ``.npz`` round trip, clear errors on bad files."""

from __future__ import annotations

from pathlib import Path

import attrs
import numpy as np
import pytest

from helpers.tiny import tiny_weights
from minivllm import LLM
from minivllm import SamplingParams
from minivllm.model_executor.tiny import TinyModelRunner
from minivllm.model_executor.tiny_weights import TinyConfig
from minivllm.model_executor.tiny_weights import TinyWeights
from minivllm.model_executor.tiny_weights import init_weights
from minivllm.model_executor.tiny_weights import load_weights
from minivllm.model_executor.tiny_weights import save_weights

GREEDY = SamplingParams(temperature=0, max_tokens=8, ignore_eos=True)


def test_same_seed_same_weights_other_seed_other_weights() -> None:
    again, other = init_weights(seed=0), init_weights(seed=1)
    for name, array in tiny_weights().arrays().items():
        np.testing.assert_array_equal(array, again.arrays()[name])
    assert not np.array_equal(tiny_weights().wqkv, other.wqkv)


def test_npz_round_trip(tmp_path: Path) -> None:
    config = TinyConfig(num_layers=3, d_model=32, num_heads=2, d_ff=48, rope_theta=500.0)
    weights = init_weights(config, seed=5)
    path = tmp_path / "tiny.npz"
    save_weights(weights, path)
    loaded = load_weights(path)
    assert loaded.config == config
    for name, array in weights.arrays().items():
        np.testing.assert_array_equal(loaded.arrays()[name], array)


def test_engine_loads_npz_by_path(tmp_path: Path) -> None:
    path = tmp_path / "tiny.npz"
    save_weights(tiny_weights(), path)
    from_file = LLM(model=str(path)).generate(["abc"], GREEDY)[0].outputs[0]
    builtin = LLM(model="tiny").generate(["abc"], GREEDY)[0].outputs[0]
    assert from_file.token_ids == builtin.token_ids
    assert from_file.text == builtin.text


def _save_raw(path: Path, **overrides: object) -> None:
    arrays: dict[str, object] = {
        **tiny_weights().arrays(),
        "num_heads": np.array(4),
        "rope_theta": np.array(10000.0),
        "norm_eps": np.array(1e-6),
    }
    arrays.update(overrides)
    np.savez(path, **arrays)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"wo": np.zeros((2, 64, 32))}, r"'wo' has shape \(2, 64, 32\), expected \(2, 64, 64\)"),
        ({"lm_head": np.zeros((64, 10))}, r"weight 'lm_head' has shape \(64, 10\)"),
        ({"num_heads": np.array(5)}, r"d_model \(64\) must be divisible by num_heads \(5\)"),
        ({"embed": np.zeros((258, 64), dtype=np.int32)}, "weight 'embed' must be floating point"),
        ({"attn_norm": np.full((2, 64), np.nan)}, "weight 'attn_norm' contains NaN"),
        ({"embed": np.zeros(5)}, "embed must be 2-d"),
    ],
)
def test_bad_npz_is_refused_naming_the_field(
    tmp_path: Path, overrides: dict[str, object], message: str
) -> None:
    path = tmp_path / "bad.npz"
    _save_raw(path, **overrides)
    with pytest.raises(ValueError, match=message):
        load_weights(path)


def test_npz_missing_arrays_or_file(tmp_path: Path) -> None:
    path = tmp_path / "partial.npz"
    np.savez(path, embed=tiny_weights().embed)
    with pytest.raises(ValueError, match=r"lacks the arrays \['attn_norm'"):
        load_weights(path)
    with pytest.raises(ValueError, match="does not exist"):
        load_weights(tmp_path / "absent.npz")
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match=r"not a readable \.npz file"):
        load_weights(tmp_path / "junk.npz")


def test_weights_must_match_the_byte_vocabulary() -> None:
    small = init_weights(TinyConfig(vocab_size=100))
    with pytest.raises(ValueError, match="vocab_size must be 258"):
        TinyModelRunner(small, num_gpu_blocks=8, block_size=4)


def test_weights_are_read_only() -> None:
    with pytest.raises(ValueError, match="read-only"):
        tiny_weights().embed[0, 0] = 1.0
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        tiny_weights().embed = np.zeros((258, 64))  # type: ignore[misc]


def test_config_refuses_bad_fields() -> None:
    with pytest.raises(ValueError, match="num_layers must be a positive integer, got 0"):
        TinyConfig(num_layers=0)
    with pytest.raises(ValueError, match=r"head_dim .* must be even"):
        TinyConfig(d_model=12, num_heads=4)
    with pytest.raises(ValueError, match="weight 'embed' has shape"):
        TinyWeights(config=TinyConfig(), **{**tiny_weights().arrays(), "embed": np.zeros((3, 3))})
