"""``EngineArgs``: the engine's arguments under vLLM's names (vLLM's ``vllm/engine/arg_utils.py``).

``LLMEngine.from_engine_args(EngineArgs(...))`` builds an engine from them, so
code written for vLLM's ``LLMEngine`` runs unchanged. Only the arguments
minivllm has are here; each default is minivllm's (vLLM resolves several of
its ``None`` defaults per platform).
"""

from __future__ import annotations

from typing import Any

import attrs

from minivllm.config import POLICIES

__all__ = ["EngineArgs"]


@attrs.frozen(kw_only=True)
class EngineArgs:
    """The engine's arguments as vLLM's ``EngineArgs`` names them.

    ``num_gpu_blocks_override`` is the number of KV blocks (minivllm never
    profiles memory, so without it the engine has 2048); ``scheduling_policy``
    is ``"fcfs"`` or ``"priority"``. Values are validated when the engine is
    built, with the engine's messages.
    """

    model: str = "dummy"
    seed: int = 0
    max_model_len: int = 1024
    block_size: int = 16
    enable_prefix_caching: bool = False
    max_num_batched_tokens: int = 2048
    long_prefill_token_threshold: int = 0
    max_num_seqs: int = 128
    num_gpu_blocks_override: int | None = None
    enable_chunked_prefill: bool = True
    scheduler_reserve_full_isl: bool = True
    scheduling_policy: str = attrs.field(default="fcfs")
    async_scheduling: bool = False

    @scheduling_policy.validator
    def _check_policy(self, attribute: attrs.Attribute[str], value: str) -> None:
        if value not in POLICIES:
            raise ValueError(f"scheduling_policy must be one of {POLICIES}, got {value!r}")

    def engine_kwargs(self) -> dict[str, Any]:
        """These arguments as ``LLMEngine`` keyword arguments."""
        kwargs: dict[str, Any] = {
            "model": self.model,
            "seed": self.seed,
            "max_model_len": self.max_model_len,
            "block_size": self.block_size,
            "enable_prefix_caching": self.enable_prefix_caching,
            "max_num_batched_tokens": self.max_num_batched_tokens,
            "long_prefill_token_threshold": self.long_prefill_token_threshold,
            "max_num_seqs": self.max_num_seqs,
            "enable_chunked_prefill": self.enable_chunked_prefill,
            "scheduler_reserve_full_isl": self.scheduler_reserve_full_isl,
            "policy": self.scheduling_policy,
            "async_scheduling": self.async_scheduling,
        }
        if self.num_gpu_blocks_override is not None:
            kwargs["num_gpu_blocks"] = self.num_gpu_blocks_override
        return kwargs
