"""Sampling parameters, validated on construction as vLLM's ``SamplingParams`` are."""

from __future__ import annotations

import enum
from collections.abc import Iterable

import attrs

from minivllm.validation import INT64_MAX
from minivllm.validation import INT64_MIN
from minivllm.validation import UINT64_MAX
from minivllm.validation import check_int
from minivllm.validation import check_number
from minivllm.validation import describe
from minivllm.validation import int_tuple
from minivllm.validation import is_integer


class RequestOutputKind(enum.Enum):
    """How much of the output each step returns (vLLM's ``RequestOutputKind``)."""

    CUMULATIVE = 0
    """All tokens so far, every step."""
    DELTA = 1
    """Only this step's new tokens."""
    FINAL_ONLY = 2
    """Nothing until the request finishes, then everything."""


def _to_int_tuple(value: Iterable[int] | int | None) -> tuple[int, ...]:
    # Token ids are below the vocabulary's size, which the engine checks; here they
    # must be integers a log can hold (numpy integers are taken as ints).
    return int_tuple("stop_token_ids", value, low=0, high=INT64_MAX)


def _to_str_tuple(value: Iterable[str] | str | None) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    if isinstance(value, bytes | dict) or not isinstance(value, Iterable):
        raise ValueError(f"stop must be a string or a list of strings, got {describe(value)}.")
    strings = tuple(value)
    for i, item in enumerate(strings):
        if not isinstance(item, str) or not item:
            raise ValueError(f"stop must contain non-empty strings, got {describe(item)} at {i}.")
    return strings


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


def _verify(p: SamplingParams) -> None:
    # The messages follow vLLM's `SamplingParams._verify_args`, and add what came. Integers
    # must fit in 64 bits, the size a log stores them in; a bool is not a number.
    if not is_integer(p.n) or p.n < 1:
        raise ValueError(f"n must be at least 1, got {p.n!r}.")
    if p.n != 1:
        raise ValueError(f"n={p.n} is not supported: minivllm samples one sequence per prompt.")
    if p.max_tokens is not None:
        object.__setattr__(p, "max_tokens", check_int("max_tokens", p.max_tokens, low=1))
    object.__setattr__(p, "min_tokens", check_int("min_tokens", p.min_tokens, low=0))
    if p.max_tokens is not None and p.min_tokens > p.max_tokens:
        raise ValueError(
            f"min_tokens must be less than or equal to max_tokens={p.max_tokens}, "
            f"got {p.min_tokens}."
        )
    object.__setattr__(p, "temperature", check_number("temperature", p.temperature, low=0.0))
    object.__setattr__(p, "top_p", check_number("top_p", p.top_p, low=0.0, low_open=True, high=1.0))
    object.__setattr__(p, "top_k", check_int("top_k (0 or -1 disable it)", p.top_k, low=-1))
    if p.seed is not None:
        object.__setattr__(p, "seed", check_int("seed", p.seed, low=INT64_MIN, high=UINT64_MAX))
    if not isinstance(p.ignore_eos, bool):
        raise ValueError(f"ignore_eos must be a bool, got {describe(p.ignore_eos)}.")
    if not isinstance(p.output_kind, RequestOutputKind):
        raise ValueError(f"output_kind must be a RequestOutputKind, got {describe(p.output_kind)}.")
