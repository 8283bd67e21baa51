"""Sampling parameters, validated on construction as vLLM's ``SamplingParams`` are."""

from __future__ import annotations

import enum
from collections.abc import Iterable

import attrs


class RequestOutputKind(enum.Enum):
    """How much of the output each step returns (vLLM's ``RequestOutputKind``)."""

    CUMULATIVE = 0
    """All tokens so far, every step."""
    DELTA = 1
    """Only this step's new tokens."""
    FINAL_ONLY = 2
    """Nothing until the request finishes, then everything."""


def _to_int_tuple(value: Iterable[int] | int | None) -> tuple[int, ...]:
    if value is None:
        return ()
    if isinstance(value, int):
        return (value,)
    return tuple(value)


def _to_str_tuple(value: Iterable[str] | str | None) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    return tuple(value)


@attrs.frozen
class SamplingParams:
    """How to sample one request's output tokens (vLLM's ``SamplingParams``).

    ``max_tokens=None`` means "until ``max_model_len``". ``top_k`` of 0 or -1
    disables top-k. ``n`` (sequences per prompt) is accepted so vLLM code runs,
    but only ``n=1`` is supported. Bad values raise ``ValueError`` naming the
    field and value.
    """

    max_tokens: int | None = 16
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    min_tokens: int = 0
    seed: int | None = None
    stop_token_ids: tuple[int, ...] = attrs.field(default=(), converter=_to_int_tuple)
    ignore_eos: bool = False
    stop: tuple[str, ...] = attrs.field(default=(), converter=_to_str_tuple)
    output_kind: RequestOutputKind = RequestOutputKind.CUMULATIVE
    n: int = 1

    def __attrs_post_init__(self) -> None:
        _verify(self)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _verify(p: SamplingParams) -> None:
    # The messages follow vLLM's `SamplingParams._verify_args`.
    if not _is_int(p.n) or p.n < 1:
        raise ValueError(f"n must be at least 1, got {p.n!r}.")
    if p.n != 1:
        raise ValueError(f"n={p.n} is not supported: minivllm samples one sequence per prompt.")
    if p.max_tokens is not None and (not _is_int(p.max_tokens) or p.max_tokens < 1):
        raise ValueError(f"max_tokens must be at least 1, got {p.max_tokens!r}.")
    if not _is_int(p.min_tokens) or p.min_tokens < 0:
        raise ValueError(f"min_tokens must be greater than or equal to 0, got {p.min_tokens!r}.")
    if p.max_tokens is not None and p.min_tokens > p.max_tokens:
        raise ValueError(
            f"min_tokens must be less than or equal to max_tokens={p.max_tokens}, "
            f"got {p.min_tokens}."
        )
    if not isinstance(p.temperature, int | float) or isinstance(p.temperature, bool):
        raise ValueError(f"temperature must be a number, got {p.temperature!r}.")
    if not p.temperature >= 0.0 or p.temperature != p.temperature:
        raise ValueError(f"temperature must be non-negative, got {p.temperature!r}.")
    if not isinstance(p.top_p, int | float) or not 0.0 < p.top_p <= 1.0:
        raise ValueError(f"top_p must be in (0, 1], got {p.top_p!r}.")
    if not _is_int(p.top_k) or p.top_k < -1:
        raise ValueError(f"top_k must be 0 or -1 (disable), or at least 1, got {p.top_k!r}.")
    if p.seed is not None and not _is_int(p.seed):
        raise ValueError(f"seed must be an integer or None, got {p.seed!r}.")
    for token_id in p.stop_token_ids:
        if not _is_int(token_id) or token_id < 0:
            raise ValueError(f"stop_token_ids must be non-negative integers, got {token_id!r}.")
    if not isinstance(p.ignore_eos, bool):
        raise ValueError(f"ignore_eos must be a bool, got {p.ignore_eos!r}.")
    if not isinstance(p.output_kind, RequestOutputKind):
        raise ValueError(f"output_kind must be a RequestOutputKind, got {p.output_kind!r}.")
    for s in p.stop:
        if not isinstance(s, str) or not s:
            raise ValueError(f"stop must contain non-empty strings, got {s!r}.")
