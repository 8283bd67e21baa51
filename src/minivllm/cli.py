"""``minivllm generate "prompt" ...``: run prompts and print the outputs.

``minivllm replay WORKLOAD.json``: run a workload in the reference runs' format
and print one JSON line per engine step, as the reference traces are written.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from minivllm.entrypoints.llm import LLM
from minivllm.sampling_params import SamplingParams


def build_parser() -> argparse.ArgumentParser:
    """The ``minivllm`` argument parser."""
    parser = argparse.ArgumentParser(prog="minivllm", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    gen = sub.add_parser("generate", help="generate text for one or more prompts")
    gen.add_argument("prompts", nargs="+", help="prompt texts")
    gen.add_argument("--model", default="dummy", help="'dummy', 'tiny' or a path to an .npz file")
    gen.add_argument("--max-tokens", type=int, default=16)
    gen.add_argument("--min-tokens", type=int, default=0)
    gen.add_argument("--temperature", type=float, default=1.0)
    gen.add_argument("--top-p", type=float, default=1.0)
    gen.add_argument("--top-k", type=int, default=0)
    gen.add_argument("--seed", type=int, default=None)
    gen.add_argument("--ignore-eos", action="store_true")
    gen.add_argument("--stop", action="append", default=[], help="stop string (repeatable)")
    gen.add_argument("--max-num-seqs", type=int, default=128)
    gen.add_argument("--max-num-batched-tokens", type=int, default=2048)
    gen.add_argument("--max-model-len", type=int, default=1024)
    gen.add_argument("--num-gpu-blocks", type=int, default=2048)
    gen.add_argument("--block-size", type=int, default=16)
    gen.add_argument("--enable-prefix-caching", action="store_true")
    gen.add_argument(
        "--async-scheduling",
        action="store_true",
        help="schedule the next batch while the model runs the previous one (vLLM's GPU default)",
    )
    gen.add_argument("--policy", choices=("fcfs", "priority"), default="fcfs")
    gen.add_argument(
        "--observer",
        action="append",
        default=[],
        help="attach an observer registered under the 'minivllm.observers' entry points",
    )
    replay = sub.add_parser("replay", help="run a workload file and print each step as a JSON line")
    replay.add_argument("workload", help="a workload in the reference runs' JSON format")
    replay.add_argument(
        "--format",
        type=int,
        choices=(1, 2),
        default=None,
        help="trace format (default: 2 if the workload uses any key of the second format)",
    )
    return parser


def _replay(path: str, trace_format: int | None) -> int:
    from minivllm.workload import Workload, WorkloadNotDrained, run_workload

    try:
        workload = Workload.load(path, trace_format)
    except OSError as exc:
        print(f"minivllm: error: cannot read {path}: {exc.strerror}", file=sys.stderr)
        return 2
    except (ValueError, KeyError, TypeError) as exc:
        print(f"minivllm: error: {Path(path).name} is not a workload: {exc!r}", file=sys.stderr)
        return 2
    try:
        for record in run_workload(workload):
            print(json.dumps(record.to_json(workload.trace_format)))
    except (ValueError, WorkloadNotDrained) as exc:  # a refused request, a run without end
        print(f"minivllm: error: {exc}", file=sys.stderr)
        return 2
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``minivllm`` command."""
    # The tiny model's matrices are 64 wide: BLAS threads cost more than they
    # save. Set before numpy is first imported (the tiny runner imports it).
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    args = build_parser().parse_args(argv)
    if args.command == "replay":
        return _replay(args.workload, args.format)
    try:
        params = SamplingParams(
            max_tokens=args.max_tokens,
            min_tokens=args.min_tokens,
            temperature=args.temperature,
            top_p=args.top_p,
            top_k=args.top_k,
            seed=args.seed,
            ignore_eos=args.ignore_eos,
            stop=tuple(args.stop),
        )
        llm = LLM(
            args.model,
            max_num_seqs=args.max_num_seqs,
            max_num_batched_tokens=args.max_num_batched_tokens,
            max_model_len=args.max_model_len,
            num_gpu_blocks=args.num_gpu_blocks,
            block_size=args.block_size,
            enable_prefix_caching=args.enable_prefix_caching,
            async_scheduling=args.async_scheduling,
            policy=args.policy,
            observers=args.observer,
        )
        outputs = llm.generate(args.prompts, params)
    except ValueError as exc:
        print(f"minivllm: error: {exc}", file=sys.stderr)
        return 2
    for out in outputs:
        completion = out.outputs[0]
        print(
            f"[{out.request_id}] {out.prompt!r} -> {completion.text!r} "
            f"({len(completion.token_ids)} tokens, finish_reason={completion.finish_reason})"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
