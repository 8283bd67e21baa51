"""The commands that read logs: ``show``, ``check``, ``stats``, ``slice`` and ``merge``.

Each reads its log in one streaming pass (``slice --steps`` in two), holding
the live requests of each engine, not the file: ``show`` keeps only the
requests it will print (``--limit``, ``--request``, ``--engine``) and ``stats``
one float per request and metric. Logs merged from several engines are read
per engine; their requests are shown as ``ENGINE/ID``.
"""

from __future__ import annotations

import argparse
import heapq
from collections.abc import Callable
from collections.abc import Iterable
from collections.abc import Iterator
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING
from typing import Any

from lifecycle_trace.cli import _render
from lifecycle_trace.cli._open import open_log
from lifecycle_trace.cli._open import printed_warnings
from lifecycle_trace.cli._open import readable_file
from lifecycle_trace.fold.requests import Record
from lifecycle_trace.fold.stats import StatsAccumulator
from lifecycle_trace.fold.timeline import Timeline
from lifecycle_trace.fold.timeline import iter_timelines
from lifecycle_trace.fold.timeline import life_labels
from lifecycle_trace.log.merge import merge_logs
from lifecycle_trace.log.slice import parse_step_range
from lifecycle_trace.log.slice import slice_log
from lifecycle_trace.streaming import check_records
from minivllm.cli_errors import EXIT_INPUT_OUTPUT
from minivllm.cli_errors import InputOutputError
from minivllm.events import StepFinished
from minivllm.events import StepStarted

if TYPE_CHECKING:
    from lifecycle_trace.check import Violation

__all__ = ["COMMANDS", "add_commands"]

DEFAULT_SHOW_LIMIT = 50


def add_commands(sub: Any) -> None:
    """Add the log-reading commands to ``sub`` (the object ``add_subparsers()`` returned)."""
    for name, text in (
        ("show", "per-request timeline table and per-step status chart"),
        ("check", "check the lifecycle invariants; exit status 1 on any violation"),
        ("stats", "TTFT, TPOT, queue and end-to-end time summaries"),
    ):
        p = sub.add_parser(name, help=text)
        p.add_argument("log", type=Path, help="a JSON Lines event log")
        p.add_argument("--lenient", action="store_true", help="skip corrupt lines (with a warning)")
        if name == "show":
            p.add_argument("--width", type=int, default=80, help="steps per chart block")
            p.add_argument(
                "--limit",
                type=int,
                default=DEFAULT_SHOW_LIMIT,
                help=f"show at most this many requests, the first added (default "
                f"{DEFAULT_SHOW_LIMIT}; 0 for all)",
            )
            p.add_argument(
                "--request", action="append", default=[], help="show this request id (repeatable)"
            )
            p.add_argument("--engine", help="show only this engine's requests (merged logs)")
        if name == "check":
            p.add_argument(
                "--bounds-only",
                action="store_true",
                help="check the event rules only, not the scheduler's decisions (for a slice: "
                "its scheduler also weighed the requests the slice left out)",
            )

    sl = sub.add_parser(
        "slice",
        help="cut a log down to some requests or steps (a valid log itself)",
        description="Requests keep their whole lives; step events are projected onto the kept "
        "requests and sequence numbers renumbered, so check and show accept the slice.",
    )
    sl.add_argument("log", type=Path, help="a JSON Lines event log")
    what = sl.add_mutually_exclusive_group(required=True)
    what.add_argument("--requests", nargs="+", metavar="ID", help="keep these request ids")
    what.add_argument(
        "--steps", metavar="A:B", help="keep every request live in steps A..B-1 (A: or :B too)"
    )
    sl.add_argument("-o", "--output", type=Path, required=True, help="log file to write")
    sl.add_argument("--lenient", action="store_true", help="skip corrupt lines (with a warning)")

    merge = sub.add_parser(
        "merge", help="merge the logs of several engines into one, ordered by time"
    )
    merge.add_argument("logs", type=Path, nargs="+", help="JSON Lines event logs, one per engine")
    merge.add_argument("-o", "--output", type=Path, required=True, help="log file to write")
    merge.add_argument("--lenient", action="store_true", help="skip corrupt lines (with a warning)")


def _order(t: Timeline) -> tuple[int, str, int]:
    return t.arrival_ns, t.engine_id, t.added_seq


def cmd_show(args: argparse.Namespace) -> int:
    """``lifecycle-trace show``: the timelines of (some of) the log's requests."""
    if args.limit < 0:
        raise ValueError(f"--limit must be 0 (all) or more, got {args.limit}")
    wanted = frozenset(args.request)
    engines: set[str] = set()
    matched = 0

    def matching(timelines: Iterator[Timeline]) -> Iterator[Timeline]:
        nonlocal matched
        for t in timelines:
            engines.add(t.engine_id)
            if (not wanted or t.request_id in wanted) and (
                args.engine is None or t.engine_id == args.engine
            ):
                matched += 1
                yield t

    with open_log(args.log, args.lenient) as log:
        found = matching(iter_timelines(log.records))
        if args.limit > 0:
            chosen = heapq.nsmallest(args.limit, found, key=_order)
        else:
            chosen = sorted(found, key=_order)
    timelines = dict(zip(life_labels(chosen, engines=len(engines) > 1), chosen, strict=True))
    print(_render.status_chart(timelines, width=args.width))
    print()
    print(_render.timeline_table(timelines))
    if len(chosen) < matched:
        print(
            f"\nshowing {len(chosen)} of {matched} requests (the first added); "
            f"--limit N (0 for all) or --request ID to choose"
        )
    return 0


# What a log that ends before its run did looks like at its end: requests never
# finished and the blocks they hold. One cut-short note says it instead.
_END_OF_RUN = frozenset({"all_finished", "kv_drained"})


def cmd_check(args: argparse.Namespace) -> int:
    """``lifecycle-trace check``: the invariants, per engine; exit status 1 on any violation.

    A log without events is an input failure (3), not a pass. A log that ends
    while requests are unfinished (a run stopped, or a file cut off) is
    reported as cut short, once, instead of as every request never finished:
    exit status 3 if what it holds is sound, 1 if it holds violations.
    """
    # Per engine: its last StepStarted, and the seq of its last StepFinished.
    started: dict[str, StepStarted] = {}
    closed: dict[str, int] = {}

    def noting_the_ends(records: Iterable[Record]) -> Iterator[Record]:
        for engine, event in records:
            yield engine, event
            if type(event) is StepFinished:
                closed[engine] = event.seq
            elif type(event) is StepStarted:
                started[engine] = event

    with open_log(args.log, args.lenient) as log:
        by_engine = check_records(noting_the_ends(log.records), decisions=not args.bounds_only)
        cut_off = log.cut_off
    if not log.num_records:
        raise InputOutputError(f"{args.log}: the log holds no events")
    unfinished = sum(v.invariant == "all_finished" for vs in by_engine.values() for v in vs)
    mid_step = {e for e, event in started.items() if event.seq > closed.get(e, -1)}
    cut_short = cut_off or bool(mid_step) or unfinished > 0

    def said_by_the_cut(engine: str, v: Violation) -> bool:
        # Of a log cut short, the end-of-run checks and its last, unfinished step say nothing.
        if v.invariant in _END_OF_RUN:
            return True
        return engine in mid_step and any(seq > closed.get(engine, -1) for seq in v.seqs)

    violations = [
        (engine, v)
        for engine, vs in by_engine.items()
        for v in vs
        if not (cut_short and said_by_the_cut(engine, v))
    ]
    merged = len(by_engine) > 1
    if cut_short:
        how = "its last line is cut off" if cut_off else "it ends before its run did"
        steps = sorted({started[e].step for e in mid_step})
        where = f"in step {steps[0]}" if steps else "after a whole step"
        print(
            f"{args.log}: cut short: {how} ({log.num_records} events, ending {where}, "
            f"{unfinished} request(s) unfinished); checked what it holds"
        )
    if not violations:
        if not cut_short:
            print(f"{args.log}: {log.num_records} events, no invariant violated")
            return 0
        print(f"{args.log}: no invariant violated in what it holds")
        return EXIT_INPUT_OUTPUT
    print(f"{args.log}: {len(violations)} violation(s)")
    for engine, v in violations:
        seqs = ",".join(map(str, v.seqs))
        where = f"engine {engine} " if merged else ""
        line = f"  [{v.invariant}] {where}request {v.request_id} step {v.step} seq {seqs}: "
        print(_render.printable(line + v.message))
    return 1


def cmd_stats(args: argparse.Namespace) -> int:
    """``lifecycle-trace stats``: latency summaries over every request of the log."""
    acc = StatsAccumulator()
    engines: set[str] = set()
    with open_log(args.log, args.lenient) as log:
        for t in iter_timelines(log.records):
            engines.add(t.engine_id)
            acc.add(t)
    across = f" across {len(engines)} engines" if len(engines) > 1 else ""
    print(
        f"{args.log}: {acc.num_requests} requests{across}, {acc.num_finished} finished "
        f"({acc.num_preemptions} preemptions)"
    )
    print(_render.stats_table(acc.summaries()))
    return 0


def cmd_slice(args: argparse.Namespace) -> int:
    """``lifecycle-trace slice``: write the part of a log that holds some requests or steps."""
    readable_file(args.log)
    steps = parse_step_range(args.steps) if args.steps is not None else None
    with printed_warnings():
        n = slice_log(
            args.log, args.output, requests=args.requests or (), steps=steps, lenient=args.lenient
        )
    print(f"{n} events written to {args.output}")
    return 0


def cmd_merge(args: argparse.Namespace) -> int:
    """``lifecycle-trace merge``: combine the logs of several engines, ordered by time."""
    for path in args.logs:
        readable_file(path)
    with printed_warnings():
        n = merge_logs(args.logs, args.output, lenient=args.lenient)
    print(f"{n} events from {len(args.logs)} logs written to {args.output}")
    return 0


COMMANDS: Mapping[str, Callable[[argparse.Namespace], int]] = {
    "show": cmd_show,
    "check": cmd_check,
    "stats": cmd_stats,
    "slice": cmd_slice,
    "merge": cmd_merge,
}
"""Handlers of the subcommands :func:`add_commands` adds, by name."""
