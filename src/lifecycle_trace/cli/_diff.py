"""``lifecycle-trace diff A B``: where, per request, two logs part (exit status 1 if they do)."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from lifecycle_trace.cli._open import readable_file
from lifecycle_trace.diffing import DEFAULT_CONTEXT
from lifecycle_trace.diffing import diff_logs
from lifecycle_trace.diffing import format_divergences

__all__ = ["COMMANDS", "add_commands"]


def add_commands(sub: Any) -> None:
    """Add ``diff`` to ``sub`` (the object ``add_subparsers()`` returned)."""
    p = sub.add_parser(
        "diff",
        help="where two logs part, per request and step (exit status 1 if they differ)",
        description="Aligns two logs by request id (and by life, for an id used again) and "
        "step, and prints for each request the first step where its status or counters "
        "differ, with the steps around it. Exit status 0: the same lifecycles; 1: they differ.",
    )
    p.add_argument("log_a", type=Path, help="a JSON Lines event log (A)")
    p.add_argument("log_b", type=Path, help="another one (B)")
    p.add_argument(
        "--context",
        type=int,
        default=DEFAULT_CONTEXT,
        help=f"steps shown before and after the parting step (default {DEFAULT_CONTEXT})",
    )
    p.add_argument("--lenient", action="store_true", help="skip corrupt lines (with a warning)")


def cmd_diff(args: argparse.Namespace) -> int:
    """``lifecycle-trace diff``: print where the logs part; 0 if nowhere, 1 otherwise."""
    for path in (args.log_a, args.log_b):
        readable_file(path)
    divergences, config = diff_logs(
        args.log_a, args.log_b, context=args.context, lenient=args.lenient
    )
    print(f"A: {args.log_a}")
    print(f"B: {args.log_b}")
    if config:
        print(f"note: the engines' limits differ: {'; '.join(config)}")
    if not divergences:
        print("same lifecycle for every request, at every step")
        return 0
    print(f"{len(divergences)} request(s) part:")
    print()
    print(format_divergences(divergences))
    return 1


COMMANDS: Mapping[str, Callable[[argparse.Namespace], int]] = {"diff": cmd_diff}
"""Handlers of the subcommands :func:`add_commands` adds, by name."""
