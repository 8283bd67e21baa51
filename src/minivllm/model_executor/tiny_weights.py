"""The tiny model's shape and weights: made from a seed, saved to and loaded from ``.npz``."""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any

import attrs
import numpy as np
from numpy.typing import NDArray

Array = NDArray[np.floating[Any]]

DEFAULT_WEIGHTS_SEED = 0
"""The seed of ``model="tiny"``: every engine gets the same weights."""


def _positive(instance: object, attribute: attrs.Attribute[int], value: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{attribute.name} must be a positive integer, got {value!r}")


def _positive_float(instance: object, attribute: attrs.Attribute[float], value: float) -> None:
    if not isinstance(value, int | float) or isinstance(value, bool) or not value > 0:
        raise ValueError(f"{attribute.name} must be a positive number, got {value!r}")


@attrs.frozen(kw_only=True)
class TinyConfig:
    """Shape of the tiny decoder-only transformer (pre-norm, RMSNorm, rotary, SwiGLU)."""

    vocab_size: int = attrs.field(default=258, validator=_positive)
    num_layers: int = attrs.field(default=2, validator=_positive)
    d_model: int = attrs.field(default=64, validator=_positive)
    num_heads: int = attrs.field(default=4, validator=_positive)
    d_ff: int = attrs.field(default=256, validator=_positive)
    rope_theta: float = attrs.field(default=10000.0, validator=_positive_float)
    norm_eps: float = attrs.field(default=1e-6, validator=_positive_float)

    def __attrs_post_init__(self) -> None:
        if self.d_model % self.num_heads:
            raise ValueError(
                f"d_model ({self.d_model}) must be divisible by num_heads ({self.num_heads})"
            )
        if self.head_dim % 2:
            raise ValueError(
                f"head_dim (d_model / num_heads = {self.head_dim}) must be even for rotary "
                f"positions"
            )

    @property
    def head_dim(self) -> int:
        """Width of one attention head."""
        return self.d_model // self.num_heads

    def weight_shapes(self) -> dict[str, tuple[int, ...]]:
        """The shape of every weight array, by name; layers are stacked on axis 0."""
        v, n, d, f = self.vocab_size, self.num_layers, self.d_model, self.d_ff
        return {
            "embed": (v, d),
            "attn_norm": (n, d),
            "wqkv": (n, d, 3 * d),
            "wo": (n, d, d),
            "mlp_norm": (n, d),
            "w_gate_up": (n, d, 2 * f),
            "w_down": (n, f, d),
            "final_norm": (d,),
            "lm_head": (d, v),
        }


_SCALARS = ("num_heads", "rope_theta", "norm_eps")
"""Config fields that the array shapes do not reveal, so the ``.npz`` stores them."""


def _frozen_array(value: Any) -> Array:
    array = np.array(value)
    if not np.issubdtype(array.dtype, np.floating):
        array = array.astype(np.float64)
    array.flags.writeable = False
    return array


@attrs.frozen(kw_only=True, eq=False)
class TinyWeights:
    """Every parameter of the tiny model, as read-only floating-point arrays."""

    config: TinyConfig
    embed: Array = attrs.field(converter=_frozen_array)
    attn_norm: Array = attrs.field(converter=_frozen_array)
    wqkv: Array = attrs.field(converter=_frozen_array)
    wo: Array = attrs.field(converter=_frozen_array)
    mlp_norm: Array = attrs.field(converter=_frozen_array)
    w_gate_up: Array = attrs.field(converter=_frozen_array)
    w_down: Array = attrs.field(converter=_frozen_array)
    final_norm: Array = attrs.field(converter=_frozen_array)
    lm_head: Array = attrs.field(converter=_frozen_array)

    def __attrs_post_init__(self) -> None:
        for name, shape in self.config.weight_shapes().items():
            array = getattr(self, name)
            if array.shape != shape:
                raise ValueError(
                    f"weight {name!r} has shape {array.shape}, expected {shape} for {self.config}"
                )
            if not np.isfinite(array).all():
                raise ValueError(f"weight {name!r} contains NaN or infinite values")

    def arrays(self) -> dict[str, Array]:
        """The weight arrays by name."""
        return {name: getattr(self, name) for name in self.config.weight_shapes()}

    def astype(self, dtype: type[np.floating[Any]]) -> TinyWeights:
        """The same weights in another floating-point precision."""
        arrays = {name: array.astype(dtype) for name, array in self.arrays().items()}
        return TinyWeights(config=self.config, **arrays)


def init_weights(config: TinyConfig | None = None, seed: int = DEFAULT_WEIGHTS_SEED) -> TinyWeights:
    """Random weights from ``seed``: the same seed always gives the same model."""
    config = config or TinyConfig()
    rng = np.random.default_rng(seed)
    arrays: dict[str, Array] = {}
    for name, shape in config.weight_shapes().items():
        if name.endswith("norm"):
            arrays[name] = np.ones(shape)
        elif name == "embed":
            arrays[name] = rng.standard_normal(shape)
        else:
            # Scaled by fan-in so activations keep unit size through the layers.
            arrays[name] = rng.standard_normal(shape) / np.sqrt(shape[-2])
    return TinyWeights(config=config, **arrays)


class WeightsFileError(ValueError):
    """A weights file that is missing, unreadable or not what :func:`save_weights` writes.

    The command lines report it as an input failure (exit status 3).
    """


def save_weights(weights: TinyWeights, path: str | Path) -> None:
    """Write the weights and the config fields the shapes do not reveal to an ``.npz`` file."""
    config = weights.config
    scalars = {name: np.array(getattr(config, name)) for name in _SCALARS}
    arrays: dict[str, Any] = {**weights.arrays(), **scalars}
    np.savez(Path(path), **arrays)


def load_weights(path: str | Path) -> TinyWeights:
    """Read weights written by :func:`save_weights`; a bad file raises ``WeightsFileError``."""
    path = Path(path)
    if not path.is_file():
        raise WeightsFileError(f"model weights file {str(path)!r} does not exist")
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {name: data[name] for name in data.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise WeightsFileError(f"{str(path)!r} is not a readable .npz file: {exc}") from None
    missing = [n for n in (*TinyConfig().weight_shapes(), *_SCALARS) if n not in arrays]
    if missing:
        raise WeightsFileError(f"{str(path)!r} lacks the arrays {missing}")
    for name in TinyConfig().weight_shapes():
        if not np.issubdtype(arrays[name].dtype, np.floating):
            raise WeightsFileError(
                f"{str(path)!r}: weight {name!r} must be floating point, got {arrays[name].dtype}"
            )
    embed, wqkv, w_down = arrays["embed"], arrays["wqkv"], arrays["w_down"]
    if embed.ndim != 2 or wqkv.ndim != 3 or w_down.ndim != 3:
        raise WeightsFileError(
            f"{str(path)!r}: embed must be 2-d and wqkv, w_down 3-d, got shapes "
            f"{embed.shape}, {wqkv.shape}, {w_down.shape}"
        )
    try:
        config = TinyConfig(
            vocab_size=embed.shape[0],
            num_layers=wqkv.shape[0],
            d_model=embed.shape[1],
            num_heads=int(arrays["num_heads"]),
            d_ff=w_down.shape[1],
            rope_theta=float(arrays["rope_theta"]),
            norm_eps=float(arrays["norm_eps"]),
        )
        return TinyWeights(config=config, **{n: arrays[n] for n in config.weight_shapes()})
    except (TypeError, ValueError) as exc:
        raise WeightsFileError(f"{str(path)!r}: {exc}") from None
