"""How the command lines end: one line on stderr, never a traceback, and an exit status.

Both ``minivllm`` and ``lifecycle-trace`` run their commands through
:func:`run_command`. Each exit status means one thing:

====  ==========================================================================
0     done
1     done, and it found something: invariant violations (``check``), logs that
      differ (``diff``)
2     usage: a wrong argument, option or value (nothing was run or written)
3     an input or output failed: a file missing, unreadable, damaged, empty or
      cut short; an output that cannot be written (a directory, a read-only
      file, a full disk) or a closed pipe
4     an internal error: a bug, reported in one line (please report it)
130   interrupted (Ctrl-C)
====  ==========================================================================

An output left unfinished by a failure is never left behind half-written: see
:mod:`lifecycle_trace._output`.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import os
import sys
from collections.abc import Callable
from typing import NoReturn

__all__ = [
    "EXIT_FOUND",
    "EXIT_INPUT_OUTPUT",
    "EXIT_INTERNAL",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_STATUS_HELP",
    "EXIT_USAGE",
    "InputOutputError",
    "UsageError",
    "run_command",
    "usage_error",
]

EXIT_OK = 0
EXIT_FOUND = 1
EXIT_USAGE = 2
EXIT_INPUT_OUTPUT = 3
EXIT_INTERNAL = 4
EXIT_INTERRUPTED = 130

EXIT_STATUS_HELP = (
    "exit status: 0 done; 1 found violations or differences; 2 usage error; 3 an input or "
    "output failed (missing, unreadable, damaged, empty or cut-short input; unwritable output, "
    "full disk, closed pipe); 4 internal error (a bug); 130 interrupted"
)
"""The exit statuses, for ``--help``."""


class UsageError(ValueError):
    """A wrong argument, option or value: exit status 2."""


class InputOutputError(Exception):
    """An input that cannot be read or used, or an output that cannot be written: exit status 3."""


def _one_line(text: object) -> str:
    return " ".join(str(text).split()) or "(no message)"


def _describe_os_error(exc: OSError) -> str:
    if exc.strerror and exc.filename is not None:
        return f"{exc.filename}: {exc.strerror}"
    if exc.strerror:
        return exc.strerror
    return _one_line(exc)


def _silence_stdout() -> None:
    """Point stdout at /dev/null, so the interpreter's final flush of a closed pipe is quiet."""
    with contextlib.suppress(OSError, ValueError, AttributeError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())


def run_command(
    prog: str,
    body: Callable[[], int],
    *,
    usage_errors: tuple[type[BaseException], ...] = (),
    input_errors: tuple[type[BaseException], ...] = (),
) -> int:
    """Run a command line's ``body`` and turn every way it can end into an exit status.

    ``usage_errors`` and ``input_errors`` name the extra exception types that
    mean exit status 2 and 3 (input errors are checked first); any other
    ``ValueError`` is a usage error, any ``OSError`` an input/output failure.
    """

    input_types: tuple[type[BaseException], ...] = (InputOutputError, *input_errors)
    usage_types: tuple[type[BaseException], ...] = (UsageError, ValueError, *usage_errors)

    def fail(status: int, message: str) -> int:
        with contextlib.suppress(OSError, ValueError):  # stderr itself may be gone
            print(f"{prog}: {message}", file=sys.stderr)
        return status

    try:
        status = body()
        sys.stdout.flush()
        return status
    except SystemExit as exc:  # argparse: --help, --version, a usage error
        code = exc.code
        return code if isinstance(code, int) else (EXIT_OK if code is None else EXIT_USAGE)
    except KeyboardInterrupt:
        return fail(EXIT_INTERRUPTED, "interrupted")
    except BrokenPipeError:
        _silence_stdout()  # the reader went away (| head): nothing more to say
        return EXIT_INPUT_OUTPUT
    except input_types as exc:
        return fail(EXIT_INPUT_OUTPUT, f"error: {_one_line(exc)}")
    except OSError as exc:
        if exc.errno == errno.EPIPE:
            _silence_stdout()
            return EXIT_INPUT_OUTPUT
        return fail(EXIT_INPUT_OUTPUT, f"error: {_one_line(_describe_os_error(exc))}")
    except usage_types as exc:
        return fail(EXIT_USAGE, f"error: {_one_line(exc)}")
    except MemoryError:
        return fail(EXIT_INPUT_OUTPUT, "error: out of memory")
    except RecursionError as exc:
        return fail(EXIT_INTERNAL, f"internal error: RecursionError: {_one_line(exc)}")
    except Exception as exc:
        return fail(
            EXIT_INTERNAL,
            f"internal error (a bug; please report it): {type(exc).__name__}: {_one_line(exc)}",
        )


def usage_error(parser: argparse.ArgumentParser, message: str) -> NoReturn:
    """argparse's error, in one line: ``prog: error: message (see prog --help)``."""
    text = f"{parser.prog}: error: {_one_line(message)} (see '{parser.prog} --help')"
    print(text, file=sys.stderr)
    raise SystemExit(EXIT_USAGE)
