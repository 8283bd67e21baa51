"""The engine and sampling options of the command lines that run the engine.

``minivllm generate`` and ``lifecycle-trace`` take the same options, defined
once, so an option means one thing in every command: ``--seed`` is
the engine's seed (vLLM's ``--seed``), which keys the sampling of every
request that has no seed of its own; ``--sampling-seed`` is
``SamplingParams.seed``, the same seed for every request. Each option's
``dest`` is the argument it sets where the names agree.
"""

from __future__ import annotations

import argparse
from typing import Any

import attrs

from minivllm.config import POLICIES
from minivllm.config import EngineConfig
from minivllm.sampling_params import SamplingParams

__all__ = [
    "add_engine_options",
    "add_mode_options",
    "add_sampling_options",
    "engine_kwargs",
    "sampling_params",
]


# The scheduler's and cache's limits: each an integer option named after the
# EngineConfig field it sets, with that field's default.
_LIMITS = {
    "max_num_seqs": "requests running at once",
    "max_num_batched_tokens": "tokens scheduled per step",
    "max_model_len": "prompt plus output tokens",
    "num_gpu_blocks": "KV cache blocks, the null block included",
    "block_size": "tokens per KV cache block",
    "long_prefill_token_threshold": "cap on a prefill's tokens per step (0: none)",
}


def add_engine_options(p: argparse.ArgumentParser) -> None:
    """The ``engine`` option group: the model and the scheduler's and cache's limits."""
    g = p.add_argument_group("engine")
    g.add_argument("--model", default="dummy", help="'dummy', 'tiny' or a path to an .npz file")
    defaults = {field.name: field.default for field in attrs.fields(EngineConfig)}
    for name, help_ in _LIMITS.items():
        flag = "--" + name.replace("_", "-")
        g.add_argument(flag, type=int, default=defaults[name], help=help_)
    g.add_argument(
        "--no-chunked-prefill", action="store_true", help="schedule each prompt in one step"
    )
    g.add_argument(
        "--enable-prefix-caching", action="store_true", help="reuse cached full prompt blocks"
    )
    add_mode_options(g)
    g.add_argument(
        "--seed",
        type=int,
        default=0,
        help="the engine's seed: keys the sampling of requests without --sampling-seed",
    )


def add_mode_options(g: Any) -> None:
    """``--async`` and ``--policy``: how the engine schedules (on a parser or an option group)."""
    g.add_argument(
        "--async",
        "--async-scheduling",
        dest="async_scheduling",
        action="store_true",
        help="async scheduling: schedule the next batch while the model runs the last one "
        "(vLLM's default on a GPU)",
    )
    g.add_argument(
        "--policy",
        choices=POLICIES,
        default="fcfs",
        help="the waiting queue's order: first come first served, or by priority",
    )


def add_sampling_options(p: argparse.ArgumentParser) -> None:
    """The ``sampling`` option group: one ``SamplingParams`` for every prompt."""
    g = p.add_argument_group("sampling")
    g.add_argument("--max-tokens", type=int, default=16, help="output tokens per prompt, at most")
    g.add_argument(
        "--min-tokens", type=int, default=0, help="output tokens before EOS or a stop may end it"
    )
    g.add_argument("--temperature", type=float, default=1.0, help="sampling temperature")
    g.add_argument("--top-p", type=float, default=1.0, help="nucleus sampling's probability mass")
    g.add_argument("--top-k", type=int, default=0, help="sample among the k likeliest (0: all)")
    g.add_argument("--sampling-seed", type=int, help="SamplingParams.seed for every request")
    g.add_argument("--ignore-eos", action="store_true", help="keep generating past EOS")
    g.add_argument(
        "--stop-token-id",
        type=int,
        action="append",
        default=[],
        help="a token id that stops a request (repeatable)",
    )
    g.add_argument("--stop", action="append", default=[], help="stop string (repeatable)")


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
