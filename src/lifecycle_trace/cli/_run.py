"""The commands that run the engine: ``demo``, ``lab`` and ``run``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from lifecycle_trace import lab
from lifecycle_trace._output import check_output
from lifecycle_trace._output import replacing
from lifecycle_trace.cli import _demo
from lifecycle_trace.cli import _render
from lifecycle_trace.cli import _workload
from lifecycle_trace.fold.timeline import Timeline
from lifecycle_trace.fold.timeline import build_timelines
from lifecycle_trace.log.reader import iter_jsonl
from lifecycle_trace.log.sink import JsonlWriter
from lifecycle_trace.log.store import write_jsonl
from lifecycle_trace.logging import make_json_logger
from minivllm.cli_options import add_engine_options
from minivllm.cli_options import add_mode_options
from minivllm.cli_options import add_sampling_options
from minivllm.cli_options import engine_kwargs
from minivllm.cli_options import sampling_params
from minivllm.engine.llm_engine import LLMEngine
from minivllm.tokenizer import ByteTokenizer

__all__ = ["COMMANDS", "add_commands"]


def add_commands(sub: Any) -> None:
    """Add ``demo``, ``lab`` and ``run`` to ``sub`` (the object ``add_subparsers()`` returned)."""
    demo = sub.add_parser("demo", help="trace a small mixed workload and explain it")
    demo.add_argument("--log", type=Path, help="also store the event log here (JSON Lines)")
    demo.add_argument("--json-log", action="store_true", help="log every event to stderr")
    add_mode_options(demo)

    lab = sub.add_parser("lab", help="lab 01: trace one prompt step by step and answer the lab")
    lab.add_argument("prompt", help="prompt text")
    add_engine_options(lab)
    add_sampling_options(lab)

    run = sub.add_parser("run", help="run prompts through the engine and store the event log")
    run.add_argument("prompts", nargs="*", help="prompt texts")
    run.add_argument("-o", "--output", type=Path, required=True, help="log file to write")
    run.add_argument("--json-log", action="store_true", help="log every event to stderr")
    run.add_argument("--show", action="store_true", help="print the timelines afterwards")
    run.add_argument(
        "--engine-id",
        default="engine-0",
        help="the engine's id in its log, so the logs of several runs can be merged",
    )
    run.add_argument(
        "--priority",
        type=int,
        action="append",
        default=[],
        help="the priority of each prompt, in order (repeatable; default 0; lower runs first "
        "under --policy priority)",
    )
    add_engine_options(run)
    add_sampling_options(run)
    _workload.add_options(run)


def _print_timelines(timelines: dict[str, Timeline], width: int = 80) -> None:
    print(_render.status_chart(timelines, width=width))
    print()
    print(_render.timeline_table(timelines))


def cmd_demo(args: argparse.Namespace) -> int:
    """``lifecycle-trace demo``: trace a small mixed workload and explain it."""
    workload = _demo.demo_workload(args.async_scheduling, args.policy)
    observers = (make_json_logger(sys.stderr),) if args.json_log else ()
    log = _demo.run_traced(workload, observers)
    timelines = build_timelines(log)
    print(_demo.intro(workload))
    print()
    for note in _demo.notes(workload):
        print(note)
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


def cmd_lab(args: argparse.Namespace) -> int:
    """``lifecycle-trace lab``: lab 01's ``trace_request`` for one prompt, with its answers."""
    num_prompt_tokens = len(ByteTokenizer().encode(args.prompt))
    kwargs = engine_kwargs(args)
    trace = lab.trace_request(kwargs, args.prompt, sampling_params(args))
    modes = [
        *(["async scheduling"] if args.async_scheduling else []),
        *(["priority policy"] if args.policy == "priority" else []),
    ]
    print(
        f"trace_request: prompt {args.prompt!r} ({num_prompt_tokens} tokens)"
        + "".join(f", {m}" for m in modes)
    )
    header = ["step", "request_id", "status", "num_computed_tokens", "num_tokens"]
    if args.async_scheduling:
        header.append("num_output_placeholders")
    rows = [
        [
            str(step),
            e.request_id,
            e.status,
            str(e.num_computed_tokens),
            str(e.num_tokens),
            str(e.num_output_placeholders),
        ][: len(header)]
        for step, e in enumerate(trace)
    ]
    print(_render.table(rows, header))
    print()
    first = lab.first_event(trace)
    prefill = lab.prefill_step(trace, num_prompt_tokens)
    token = lab.first_token_step(trace, num_prompt_tokens)
    growth = lab.decode_growth(trace, num_prompt_tokens)
    print(f"first event: {first}")
    print(f"status sequence: {' -> '.join(lab.status_sequence(trace))}")
    print(f"num_computed_tokens non-decreasing until finish: {lab.is_monotonic(trace)}")
    print(f"prefill done (num_computed_tokens >= {num_prompt_tokens}) at step: {prefill}")
    print(f"first token sampled (num_tokens > {num_prompt_tokens}) at step: {token}")
    print(f"growth of num_computed_tokens per step after that: {growth}")
    if args.async_scheduling:
        ahead = [e.num_computed_tokens - e.num_tokens for e in trace]
        print(f"num_computed_tokens - num_tokens after each step: {ahead}")
        print(
            "(async scheduling: a decoding request has num_computed_tokens == num_tokens + "
            "num_output_placeholders - 1 between steps)"
        )
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    """``lifecycle-trace run``: prompts through the engine, the event log streamed to a file."""
    if args.workload is not None or args.engine != "minivllm":
        return _workload.run(args)
    if not args.prompts:
        raise ValueError("give one or more prompts, or --workload FILE")
    params = sampling_params(args)
    priorities = list(args.priority) or [0] * len(args.prompts)
    if len(priorities) != len(args.prompts):
        raise ValueError(
            f"--priority: got {len(priorities)} for {len(args.prompts)} prompts; "
            f"give one per prompt, or none"
        )
    # An observer's failure (the log's disk is full) stops the run after the step it hit.
    engine = LLMEngine(**engine_kwargs(args), engine_id=args.engine_id, raise_observer_errors=True)
    check_output(args.output)  # before anything runs
    # Streamed, so a long run holds no log in memory; the file replaces the output once whole.
    with replacing(args.output) as partial, JsonlWriter(partial) as sink:
        engine.bus.subscribe(sink)
        if args.json_log:
            engine.bus.subscribe(make_json_logger(sys.stderr))
        for prompt, priority in zip(args.prompts, priorities, strict=True):
            engine.add_request(prompt, params, priority=priority)
        while engine.has_unfinished_requests():
            engine.step()
    print(f"{sink.num_written} events over {engine.step_index} steps written to {args.output}")
    if args.show:
        _print_timelines(build_timelines(iter_jsonl(args.output)))
    return 0


COMMANDS: Mapping[str, Callable[[argparse.Namespace], int]] = {
    "demo": cmd_demo,
    "lab": cmd_lab,
    "run": cmd_run,
}
"""Handlers of the subcommands :func:`add_commands` adds, by name."""
