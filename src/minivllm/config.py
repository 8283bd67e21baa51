"""Engine configuration, validated as vLLM validates its scheduler and cache configs."""

from __future__ import annotations

from typing import Any

import attrs

from minivllm.validation import INT64_MAX
from minivllm.validation import describe
from minivllm.validation import is_integer


def _int(value: Any) -> Any:
    """A numpy integer as the int it is (a log cannot hold numpy's); anything else as it came."""
    return int(value) if is_integer(value) and type(value) is not int else value


def _positive(instance: object, attribute: attrs.Attribute[int], value: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{attribute.name} must be a positive integer, got {describe(value)}")
    if value > INT64_MAX:
        raise ValueError(f"{attribute.name} must fit in 64 bits, got {describe(value)}")


def _non_negative(instance: object, attribute: attrs.Attribute[int], value: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError(f"{attribute.name} must be a non-negative integer, got {describe(value)}")
    if value > INT64_MAX:
        raise ValueError(f"{attribute.name} must fit in 64 bits, got {describe(value)}")


POLICIES = ("fcfs", "priority")
"""The scheduling policies (vLLM's ``SchedulerConfig.policy``)."""


def _policy(instance: object, attribute: attrs.Attribute[str], value: str) -> None:
    if value not in POLICIES:
        raise ValueError(f"{attribute.name} must be one of {POLICIES}, got {describe(value)}")


def _bool(instance: object, attribute: attrs.Attribute[bool], value: bool) -> None:
    if not isinstance(value, bool):
        raise ValueError(f"{attribute.name} must be a bool, got {describe(value)}")


@attrs.frozen(kw_only=True)
class EngineConfig:
    """The scheduler's and KV cache's limits (vLLM's SchedulerConfig and CacheConfig in one).

    ``num_gpu_blocks`` counts the reserved null block, so ``num_gpu_blocks - 1``
    blocks hold tokens. ``async_scheduling`` runs vLLM's ``AsyncScheduler``
    under a batch queue of two (the model runs one batch while the next is
    scheduled); ``policy`` is ``"fcfs"`` or ``"priority"`` (lower
    ``priority`` first, then earlier arrival).
    """

    max_num_seqs: int = attrs.field(default=128, converter=_int, validator=_positive)
    max_num_batched_tokens: int = attrs.field(default=2048, converter=_int, validator=_positive)
    block_size: int = attrs.field(default=16, converter=_int, validator=_positive)
    num_gpu_blocks: int = attrs.field(default=2048, converter=_int, validator=_positive)
    max_model_len: int = attrs.field(default=1024, converter=_int, validator=_positive)
    enable_chunked_prefill: bool = attrs.field(default=True, validator=_bool)
    long_prefill_token_threshold: int = attrs.field(
        default=0, converter=_int, validator=_non_negative
    )
    enable_prefix_caching: bool = attrs.field(default=False, validator=_bool)
    scheduler_reserve_full_isl: bool = attrs.field(default=True, validator=_bool)
    async_scheduling: bool = attrs.field(default=False, validator=_bool)
    policy: str = attrs.field(default="fcfs", validator=_policy)

    def __attrs_post_init__(self) -> None:
        if self.max_num_batched_tokens < self.max_num_seqs:
            raise ValueError(
                f"max_num_batched_tokens ({self.max_num_batched_tokens}) must be greater than "
                f"or equal to max_num_seqs ({self.max_num_seqs})"
            )
        if not self.enable_chunked_prefill and self.max_num_batched_tokens < self.max_model_len:
            raise ValueError(
                f"max_num_batched_tokens ({self.max_num_batched_tokens}) is smaller than "
                f"max_model_len ({self.max_model_len}) with enable_chunked_prefill=False: a "
                f"prompt near max_model_len could never be scheduled"
            )
        if self.max_model_len < 2:
            raise ValueError(f"max_model_len must be at least 2, got {self.max_model_len}")
        usable_tokens = (self.num_gpu_blocks - 1) * self.block_size
        if usable_tokens < self.max_model_len:
            raise ValueError(
                f"num_gpu_blocks ({self.num_gpu_blocks}) is too small: its "
                f"{self.num_gpu_blocks - 1} usable blocks of block_size {self.block_size} hold "
                f"{usable_tokens} tokens, fewer than one request of max_model_len "
                f"({self.max_model_len})"
            )

    @property
    def num_usable_blocks(self) -> int:
        """Blocks that hold tokens (all but the null block)."""
        return self.num_gpu_blocks - 1
