"""The ``minivllm`` command: ``generate`` runs prompts and prints the outputs;
``replay WORKLOAD.json`` runs a workload in the reference runs' format and
prints one JSON line per engine step, as the reference traces are written.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import json
import os
import stat
import sys
from collections.abc import Sequence
from typing import Any
from typing import NoReturn

import minivllm
from minivllm.cli_errors import EXIT_STATUS_HELP
from minivllm.cli_errors import InputOutputError
from minivllm.cli_errors import UsageError
from minivllm.cli_errors import run_command
from minivllm.cli_errors import usage_error
from minivllm.cli_options import add_engine_options
from minivllm.cli_options import add_sampling_options
from minivllm.cli_options import engine_kwargs
from minivllm.cli_options import sampling_params
from minivllm.entrypoints.llm import LLM
from minivllm.model_executor.tiny_weights import WeightsFileError


class HelpFormatter(argparse.HelpFormatter):
    """argparse's formatter, with each option's default appended to its help.

    A help text that already says what its default is keeps its own words;
    a flag's default reads "off", a missing value's "none".
    """

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        if not action.option_strings or "default" in text or action.default is argparse.SUPPRESS:
            return text
        if action.default is False:
            return f"{text} (default: off)"
        if action.default is None or action.default == []:
            return f"{text} (default: none)"
        return f"{text} (default: %(default)s)"


class ArgumentParser(argparse.ArgumentParser):
    """An argument parser that shows every option's default (see :class:`HelpFormatter`).

    Its help ends with the exit statuses; a usage error is one line
    (:mod:`minivllm.cli_errors`).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", HelpFormatter)
        kwargs.setdefault("epilog", EXIT_STATUS_HELP)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        """Report a usage error in one line and exit with status 2."""
        usage_error(self, message)


def package_version() -> str:
    """The installed distribution's version (the package's own when not installed)."""
    try:
        return importlib.metadata.version("minivllm-lifecycle-trace")
    except importlib.metadata.PackageNotFoundError:
        return minivllm.__version__


def build_parser() -> argparse.ArgumentParser:
    """The ``minivllm`` argument parser."""
    parser = ArgumentParser(
        prog="minivllm",
        description="A small engine that schedules requests as vLLM's v1 engine does: run "
        "prompts through it, or replay a workload of the reference runs' format.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {package_version()}")
    sub = parser.add_subparsers(
        dest="command", required=True, metavar="COMMAND", parser_class=ArgumentParser
    )
    gen = sub.add_parser("generate", help="generate text for one or more prompts")
    gen.add_argument("prompts", nargs="+", help="prompt texts")
    add_engine_options(gen)
    add_sampling_options(gen)
    gen.add_argument(
        "--observer",
        action="append",
        default=[],
        help="attach an observer registered under the 'minivllm.observers' entry points "
        "(repeatable)",
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
    from minivllm.workload import Workload
    from minivllm.workload import WorkloadNotDrained
    from minivllm.workload import run_workload

    with contextlib.suppress(OSError):  # a missing file is reported by the load below
        if stat.S_ISCHR(os.stat(path).st_mode) or stat.S_ISBLK(os.stat(path).st_mode):
            raise InputOutputError(f"{path} is a device, not a workload file")
    try:
        workload = Workload.load(path, trace_format)
    except OSError as exc:
        raise InputOutputError(f"cannot read {path}: {exc.strerror or exc}") from None
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise InputOutputError(f"{path} is not a workload: {exc!r}") from None
    try:
        for record in run_workload(workload):
            print(json.dumps(record.to_json(workload.trace_format)))
    except (ValueError, TypeError, WorkloadNotDrained) as exc:  # a refused request, no end
        raise InputOutputError(f"{path}: {exc}") from None
    return 0


def _generate(args: argparse.Namespace) -> int:
    try:
        params = sampling_params(args)
        llm = LLM(observers=args.observer, **engine_kwargs(args))
    except WeightsFileError:
        raise  # an input that cannot be read, no usage error
    except (ValueError, TypeError) as exc:
        raise UsageError(str(exc)) from None
    outputs = llm.generate(args.prompts, params)
    for out in outputs:
        completion = out.outputs[0]
        print(
            f"[{out.request_id}] {out.prompt!r} -> {completion.text!r} "
            f"({len(completion.token_ids)} tokens, finish_reason={completion.finish_reason})"
        )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``minivllm`` command; returns the exit status (never raises)."""
    # The tiny model's matrices are 64 wide: BLAS threads cost more than they
    # save. Set before numpy is first imported (the tiny runner imports it).
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

    def body() -> int:
        args = build_parser().parse_args(argv)
        if args.command == "replay":
            return _replay(args.workload, args.format)
        return _generate(args)

    return run_command("minivllm", body, input_errors=(WeightsFileError,))


if __name__ == "__main__":
    sys.exit(main())
