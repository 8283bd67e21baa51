"""``lifecycle-trace``: run, store, show, check, summarise and export request lifecycles.

Commands: ``demo`` (a small traced workload, explained), ``lab`` (lab 01's
``trace_request`` for one prompt, with the lab's answers), ``run`` (prompts to a
stored log), ``show LOG`` (timeline table and status chart), ``check LOG``
(invariants; exit status 1 on any violation), ``stats LOG`` (latency summaries),
``slice LOG`` (some requests or steps, as a log), ``merge LOG...`` (several
engines' logs in one), ``export LOG`` (Chrome trace, OpenTelemetry spans,
Prometheus metrics), ``plot LOG`` (an SVG or HTML picture) and ``diff A B``
(where two logs part, per request and step).

Every command that reads a log opens it one way (:mod:`._open`): streamed,
of one engine or merged from several; the commands that run the engine share
one set of engine and sampling options (:mod:`._options`).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from lifecycle_trace.cli import _diff
from lifecycle_trace.cli import _export
from lifecycle_trace.cli import _log
from lifecycle_trace.cli import _run
from lifecycle_trace.cli._open import printed_warnings
from lifecycle_trace.cli._open import spooled_inputs
from lifecycle_trace.log.eventlog import SequenceError
from lifecycle_trace.log.store import CorruptLogError
from lifecycle_trace.log.store import UnsupportedEventError
from minivllm.cli import ArgumentParser
from minivllm.cli import package_version
from minivllm.cli_errors import run_command
from minivllm.model_executor.tiny_weights import WeightsFileError

__all__ = ["build_parser", "main"]


DESCRIPTION = (
    "Run the engine and record its event log; show, check, summarise, slice, merge, export "
    "and draw request lifecycles from stored logs."
)


def build_parser() -> argparse.ArgumentParser:
    """The ``lifecycle-trace`` argument parser: every command listed with its help."""
    parser = ArgumentParser(prog="lifecycle-trace", description=DESCRIPTION)
    parser.add_argument("--version", action="version", version=f"%(prog)s {package_version()}")
    sub = parser.add_subparsers(
        dest="command", required=True, metavar="COMMAND", parser_class=ArgumentParser
    )
    for commands in (_run, _log, _export, _diff):
        commands.add_commands(sub)
    return parser


_COMMANDS = {**_run.COMMANDS, **_log.COMMANDS, **_export.COMMANDS, **_diff.COMMANDS}


INPUT_ERRORS = (CorruptLogError, UnsupportedEventError, SequenceError, WeightsFileError)
"""Damaged or unusable logs and weights files: exit status 3, like any input that cannot be read."""


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``lifecycle-trace`` command; returns the exit status (never raises).

    See :mod:`minivllm.cli_errors` for what each exit status means.
    """

    def body() -> int:
        args = build_parser().parse_args(argv)
        # A reader's warnings print as one line each, whichever command read the log.
        with printed_warnings(), spooled_inputs(args):
            return _COMMANDS[args.command](args)

    return run_command("lifecycle-trace", body, input_errors=INPUT_ERRORS)


if __name__ == "__main__":
    sys.exit(main())
