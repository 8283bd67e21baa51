"""The engine and sampling options of every command that runs the engine, and what they become.

The options are minivllm's own (:mod:`minivllm.cli_options`), so an option
means one thing in both command lines: ``--seed`` is the engine's seed (vLLM's
``--seed``), which keys the sampling of every request that has no seed of its
own; ``--sampling-seed`` is ``SamplingParams.seed``, the same seed for every
request.
"""

from __future__ import annotations

from minivllm.cli_options import add_engine_options
from minivllm.cli_options import add_mode_options
from minivllm.cli_options import add_sampling_options
from minivllm.cli_options import engine_kwargs
from minivllm.cli_options import sampling_params

__all__ = [
    "add_engine_options",
    "add_mode_options",
    "add_sampling_options",
    "engine_kwargs",
    "sampling_params",
]
