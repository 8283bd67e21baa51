"""``lifecycle-trace``: run, store, show, check and summarise request lifecycles.

Commands: ``demo`` (a small traced workload, explained), ``lab`` (lab 01's
``trace_request`` for one prompt, with the lab's answers), ``run`` (prompts to a
stored log), ``show LOG`` (timeline table and status chart), ``check LOG``
(invariants; exit status 1 on any violation), ``stats LOG`` (latency summaries),
``slice LOG`` (some requests or steps, as a log), ``merge LOG...`` (several
engines' logs in one). The commands that read logs stream them
(:mod:`lifecycle_trace._log_commands`).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lifecycle_trace import _demo, _diff_cli, _render, _workload_cli, lab
from lifecycle_trace import _log_commands as log_commands
from lifecycle_trace.export import _cli as export_cli
from lifecycle_trace.logging import make_json_logger
from lifecycle_trace.reader import iter_jsonl
from lifecycle_trace.sink import JsonlWriter
from lifecycle_trace.store import CorruptLogError, UnsupportedEventError, write_jsonl
from lifecycle_trace.timeline import Timeline, build_timelines
from minivllm.engine.llm_engine import LLMEngine
from minivllm.sampling_params import SamplingParams
from minivllm.tokenizer import ByteTokenizer

__all__ = ["build_parser", "main"]


class _CommandError(Exception):
    """A user-facing failure: printed as ``lifecycle-trace: error: ...``, exit status 2."""


def _add_engine_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("engine")
    g.add_argument("--model", default="dummy", help="'dummy', 'tiny' or a path to an .npz file")
    g.add_argument("--max-num-seqs", type=int, default=128)
    g.add_argument("--max-num-batched-tokens", type=int, default=2048)
    g.add_argument("--max-model-len", type=int, default=1024)
    g.add_argument("--num-gpu-blocks", type=int, default=2048)
    g.add_argument("--block-size", type=int, default=16)
    g.add_argument("--long-prefill-token-threshold", type=int, default=0)
    g.add_argument("--no-chunked-prefill", action="store_true")
    g.add_argument("--enable-prefix-caching", action="store_true")
    g.add_argument("--seed", type=int, default=0)


def _add_sampling_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("sampling")
    g.add_argument("--max-tokens", type=int, default=16)
    g.add_argument("--min-tokens", type=int, default=0)
    g.add_argument("--temperature", type=float, default=1.0)
    g.add_argument("--ignore-eos", action="store_true")
    g.add_argument("--stop-token-id", type=int, action="append", default=[])
    g.add_argument("--stop", action="append", default=[], help="stop string (repeatable)")


def build_parser() -> argparse.ArgumentParser:
    """The ``lifecycle-trace`` argument parser."""
    parser = argparse.ArgumentParser(prog="lifecycle-trace", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", help="trace a small mixed workload and explain it")
    demo.add_argument("--log", type=Path, help="also store the event log here (JSON Lines)")
    demo.add_argument("--json-log", action="store_true", help="log every event to stderr")

    lab = sub.add_parser("lab", help="lab 01: trace one prompt step by step and answer the lab")
    lab.add_argument("prompt", help="prompt text")
    _add_engine_options(lab)
    _add_sampling_options(lab)

    run = sub.add_parser("run", help="run prompts through the engine and store the event log")
    run.add_argument("prompts", nargs="*", help="prompt texts")
    run.add_argument("-o", "--output", type=Path, required=True, help="log file to write")
    run.add_argument("--json-log", action="store_true", help="log every event to stderr")
    run.add_argument("--show", action="store_true", help="print the timelines afterwards")
    _add_engine_options(run)
    _add_sampling_options(run)
    _workload_cli.add_options(run)

    log_commands.add_commands(sub)
    _diff_cli.add_commands(sub)
    export_cli.add_commands(sub)
    return parser


def _print_timelines(timelines: dict[str, Timeline], width: int = 80) -> None:
    print(_render.status_chart(timelines, width=width))
    print()
    print(_render.timeline_table(timelines))


def _cmd_demo(args: argparse.Namespace) -> int:
    workload = _demo.demo_workload()
    observers = (make_json_logger(sys.stderr),) if args.json_log else ()
    log = _demo.run_traced(workload, observers)
    timelines = build_timelines(log)
    print(_demo.intro(workload))
    print()
    print("Status at the end of each step (one row per request, one column per step):")
    print(_render.status_chart(timelines))
    print()
    print("Per-request timelines (steps are engine steps; times in ms on the event clock):")
    print(_render.timeline_table(timelines))
    print()
    print("What happened:")
    for t in timelines.values():
        print(f"  {_demo.narrate(t)}")
    print()
    print(f"{len(log)} events recorded.", end=" ")
    if args.log is not None:
        write_jsonl(log, args.log)
        print(f"Stored in {args.log}; try: lifecycle-trace show {args.log}")
    else:
        print("Store them with --log FILE, then try 'show', 'check' and 'stats' on it.")
    return 0


def _sampling_params(args: argparse.Namespace) -> SamplingParams:
    return SamplingParams(
        max_tokens=args.max_tokens,
        min_tokens=args.min_tokens,
        temperature=args.temperature,
        ignore_eos=args.ignore_eos,
        stop_token_ids=tuple(args.stop_token_id),
        stop=tuple(args.stop),
    )


def _engine_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    return dict(
        model=args.model,
        max_num_seqs=args.max_num_seqs,
        max_num_batched_tokens=args.max_num_batched_tokens,
        max_model_len=args.max_model_len,
        num_gpu_blocks=args.num_gpu_blocks,
        block_size=args.block_size,
        long_prefill_token_threshold=args.long_prefill_token_threshold,
        enable_chunked_prefill=not args.no_chunked_prefill,
        enable_prefix_caching=args.enable_prefix_caching,
        seed=args.seed,
    )


def _cmd_lab(args: argparse.Namespace) -> int:
    num_prompt_tokens = len(ByteTokenizer().encode(args.prompt))
    trace = lab.trace_request(_engine_kwargs(args), args.prompt, _sampling_params(args))
    print(f"trace_request: prompt {args.prompt!r} ({num_prompt_tokens} tokens)")
    rows = [
        [str(step), e.request_id, e.status, str(e.num_computed_tokens), str(e.num_tokens)]
        for step, e in enumerate(trace)
    ]
    header = ["step", "request_id", "status", "num_computed_tokens", "num_tokens"]
    print(_render.table(rows, header))
    print()
    first = lab.first_event(trace)
    prefill = lab.prefill_step(trace, num_prompt_tokens)
    growth = lab.decode_growth(trace, num_prompt_tokens)
    print(f"first event: {first}")
    print(f"status sequence: {' -> '.join(lab.status_sequence(trace))}")
    print(f"num_computed_tokens non-decreasing until finish: {lab.is_monotonic(trace)}")
    print(f"prefill done (num_computed_tokens >= {num_prompt_tokens}) at step: {prefill}")
    print(f"growth of num_computed_tokens per step after that: {growth}")
    return 0


def _cmd_run(args: argparse.Namespace) -> int:
    if args.workload is not None or args.engine != "minivllm":
        return _workload_cli.run(args)
    if not args.prompts:
        raise ValueError("give one or more prompts, or --workload FILE")
    params = _sampling_params(args)
    engine = LLMEngine(**_engine_kwargs(args))
    with JsonlWriter(args.output) as sink:  # streamed, so a long run holds no log in memory
        engine.bus.subscribe(sink)
        if args.json_log:
            engine.bus.subscribe(make_json_logger(sys.stderr))
        for prompt in args.prompts:
            engine.add_request(prompt, params)
        while engine.has_unfinished_requests():
            engine.step()
    print(f"{sink.num_written} events over {engine.step_index} steps written to {args.output}")
    if args.show:
        _print_timelines(build_timelines(iter_jsonl(args.output)))
    return 0


_COMMANDS = {
    "demo": _cmd_demo,
    "lab": _cmd_lab,
    "run": _cmd_run,
    **log_commands.COMMANDS,
    **export_cli.COMMANDS,
    **_diff_cli.COMMANDS,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``lifecycle-trace`` command; returns the exit status."""
    args = build_parser().parse_args(argv)
    try:
        return _COMMANDS[args.command](args)
    except (_CommandError, CorruptLogError, UnsupportedEventError, ValueError) as exc:
        print(f"lifecycle-trace: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
