"""``lifecycle-trace run --workload FILE --engine minivllm|vllm``: one workload, either engine.

The workload file is the reference runs' JSON (``config`` and ``requests``,
see ``tests/data/vllm_examples``). ``--engine vllm`` runs it on vLLM 0.22.1's
real scheduler and KV cache manager on the CPU with a scripted model (the
optional extra ``vllm``); the log is the same JSON Lines either way, so
``lifecycle-trace diff`` can compare the two.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from lifecycle_trace._output import replacing
from lifecycle_trace.cli._open import readable_file
from lifecycle_trace.log.sink import JsonlWriter
from minivllm.cli_errors import InputOutputError
from minivllm.engine.llm_engine import LLMEngine
from minivllm.workload import Workload
from minivllm.workload import run_workload

__all__ = ["ENGINES", "add_options", "run"]

ENGINES = ("minivllm", "vllm")


def add_options(run_parser: argparse.ArgumentParser) -> None:
    """Add ``--workload`` and ``--engine`` to the ``run`` command's parser."""
    g = run_parser.add_argument_group("workload")
    g.add_argument("--workload", type=Path, help="run this workload file instead of prompts")
    g.add_argument(
        "--engine",
        choices=ENGINES,
        default="minivllm",
        help="run the workload on minivllm (default) or on vLLM 0.22.1's scheduler (extra 'vllm')",
    )


def load_workload(path: Path) -> Workload:
    """Read a workload file, with errors that name the file."""
    readable_file(path, "workload file")
    try:
        data = json.loads(path.read_bytes())
    except ValueError as exc:
        raise InputOutputError(f"{path}: not JSON: {exc}") from None
    try:
        return Workload.from_reference(data)
    except (KeyError, TypeError, AttributeError, ValueError) as exc:
        raise InputOutputError(
            f"{path}: not a workload file: {exc!r} is missing or wrong"
        ) from None


def run(args: argparse.Namespace) -> int:
    """Run ``args.workload`` on ``args.engine``, writing the log to ``args.output``."""
    if args.workload is None:
        raise ValueError("--engine needs --workload FILE")
    if args.prompts:
        raise ValueError("give prompts or --workload FILE, not both")
    workload = load_workload(args.workload)
    if args.engine == "vllm":
        from lifecycle_trace.vllm import quiet_vllm_logging
        from lifecycle_trace.vllm import vllm_missing_reason

        quiet_vllm_logging()
        reason = vllm_missing_reason()
        if reason is not None:
            raise ValueError(f"--engine vllm: {reason}")
    with replacing(args.output, inputs=[args.workload]) as partial, JsonlWriter(partial) as sink:
        if args.engine == "vllm":
            from lifecycle_trace.vllm.driver import run_workload as run_on_vllm

            steps = sum(1 for _ in run_on_vllm(workload, observers=[sink]))
        else:

            def subscribe(engine: LLMEngine) -> None:
                engine.bus.subscribe(sink)

            steps = sum(1 for _ in run_workload(workload, on_engine=subscribe))
    print(f"{sink.num_written} events over {steps} steps ({args.engine}) written to {args.output}")
    return 0
