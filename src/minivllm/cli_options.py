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

from minivllm.config import POLICIES

__all__ = ["add_engine_options", "add_mode_options", "add_sampling_options"]


def add_engine_options(p: argparse.ArgumentParser) -> None:
    """The ``engine`` option group: the model and the scheduler's and cache's limits."""
    g = p.add_argument_group("engine")
    g.add_argument("--model", default="dummy", help="'dummy', 'tiny' or a path to an .npz file")
    g.add_argument("--max-num-seqs", type=int, default=128, help="requests running at once")
    g.add_argument(
        "--max-num-batched-tokens", type=int, default=2048, help="tokens scheduled per step"
    )
    g.add_argument("--max-model-len", type=int, default=1024, help="prompt plus output tokens")
    g.add_argument(
        "--num-gpu-blocks", type=int, default=2048, help="KV cache blocks, the null block included"
    )
    g.add_argument("--block-size", type=int, default=16, help="tokens per KV cache block")
    g.add_argument(
        "--long-prefill-token-threshold",
        type=int,
        default=0,
        help="cap on a prefill's tokens per step (0: none)",
    )
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
