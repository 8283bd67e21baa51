"""The engine and sampling options of every command that runs the engine, and what they become.

The options are minivllm's own (:mod:`minivllm.cli_options`), so an option
means one thing in both command lines: ``--seed`` is the engine's seed (vLLM's
``--seed``), which keys the sampling of every request that has no seed of its
own; ``--sampling-seed`` is ``SamplingParams.seed``, the same seed for every
request.
"""

from __future__ import annotations

import argparse
from typing import Any

from minivllm.cli_options import add_engine_options
from minivllm.cli_options import add_mode_options
from minivllm.cli_options import add_sampling_options
from minivllm.sampling_params import SamplingParams

__all__ = [
    "add_engine_options",
    "add_mode_options",
    "add_sampling_options",
    "engine_kwargs",
    "sampling_params",
]


# These options are named after the arguments they set.
_SAMPLING_OPTIONS = ("max_tokens", "min_tokens", "temperature", "top_p", "top_k", "ignore_eos")
_ENGINE_OPTIONS = (
    "model",
    "max_num_seqs",
    "max_num_batched_tokens",
    "max_model_len",
    "num_gpu_blocks",
    "block_size",
    "long_prefill_token_threshold",
    "enable_prefix_caching",
    "async_scheduling",
    "policy",
    "seed",
)


def sampling_params(args: argparse.Namespace) -> SamplingParams:
    """The sampling options as ``SamplingParams`` (validated there)."""
    return SamplingParams(
        **{name: getattr(args, name) for name in _SAMPLING_OPTIONS},
        seed=args.sampling_seed,
        stop_token_ids=tuple(args.stop_token_id),
        stop=tuple(args.stop),
    )


def engine_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    """The engine options as ``LLMEngine`` keyword arguments."""
    kwargs = {name: getattr(args, name) for name in _ENGINE_OPTIONS}
    kwargs["enable_chunked_prefill"] = not args.no_chunked_prefill
    return kwargs
