"""The one way every command opens a stored log, of one engine or merged from several.

:func:`open_log` checks the path, reads the log in one streaming pass as
``(engine_id, event)`` records, stops at a sequence gap left by lines a
lenient read skipped (a gap in an undamaged file is an error), and prints the
reader's warnings once the command is done.
"""

from __future__ import annotations

import argparse
import os
import shutil
import stat
import sys
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import orjson

from lifecycle_trace.fold.requests import Record
from lifecycle_trace.fold.requests import Source
from lifecycle_trace.log.eventlog import SequenceError
from lifecycle_trace.log.reader import ENGINE_KEY
from lifecycle_trace.log.reader import CorruptLogError
from lifecycle_trace.log.reader import LogReader
from lifecycle_trace.log.reader import SkippedLineWarning
from lifecycle_trace.log.reader import TruncatedLogWarning
from lifecycle_trace.log.reader import UnsupportedEventError
from lifecycle_trace.streaming import Contiguous
from minivllm.cli_errors import InputOutputError
from minivllm.cli_errors import UsageError

# Damage the reader already names with the file and line.
_NAMED_DAMAGE = (CorruptLogError, UnsupportedEventError, SequenceError)

__all__ = ["OpenLog", "open_log", "printed_warnings", "readable_file", "spooled_inputs", "warn"]


def readable_file(path: Path, what: str = "log file") -> Path:
    """``path``, if it is a file this process may read; else :class:`InputOutputError`.

    A pipe is taken (:func:`spooled_inputs` copies it to a file first); a device is not.
    """
    if not path.exists():
        raise InputOutputError(f"no such {what}: {path}")
    if path.is_dir():
        raise InputOutputError(f"{path} is a directory, not a {what}")
    mode = os.stat(path).st_mode
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        raise InputOutputError(f"{path} is a device, not a {what}")
    if not os.access(path, os.R_OK):
        raise InputOutputError(f"cannot read {path}: permission denied")
    return path


INPUTS = ("log", "logs", "log_a", "log_b", "workload")
"""Arguments that name input files, in every command but ``demo`` (its --log is written)."""


@contextmanager
def spooled_inputs(args: argparse.Namespace) -> Iterator[None]:
    """Inputs that are pipes (``show <(zcat log.gz)``) copied to files, which are read twice.

    The copy keeps the pipe's name as its file name, in a directory removed afterwards.
    """
    if args.command == "demo":
        yield
        return
    with tempfile.TemporaryDirectory(prefix="lifecycle-trace-") as tmp:
        for name in INPUTS:
            value = getattr(args, name, None)
            if isinstance(value, Path):
                setattr(args, name, _spool(value, Path(tmp)))
            elif isinstance(value, list):
                setattr(args, name, [_spool(p, Path(tmp)) for p in value])
        yield


def _spool(path: Path, directory: Path) -> Path:
    try:
        if not stat.S_ISFIFO(os.stat(path).st_mode):
            return path
    except OSError:
        return path  # the command says what is wrong with it
    copy = Path(tempfile.mkdtemp(dir=directory)) / (path.name or "pipe")
    with open(path, "rb") as source, open(copy, "wb") as target:
        shutil.copyfileobj(source, target, 1 << 20)
    return copy


def warn(message: object) -> None:
    """Print a warning the way every command does."""
    print(f"lifecycle-trace: warning: {message}", file=sys.stderr)


def _names_engines(path: Path) -> bool:
    """Whether the log's lines name their engine, as a merged log's do."""
    with open(path, "rb") as f:
        for line in f:
            if line.strip():
                try:
                    data = orjson.loads(line)
                except orjson.JSONDecodeError:
                    return False
                return isinstance(data, dict) and ENGINE_KEY in data
    return False


class OpenLog:
    """A stored log opened for one streaming pass.

    :attr:`merged` says whether it holds several engines' events (written by
    ``merge``); :attr:`records` are its ``(engine_id, event)`` records and
    :meth:`source` what the exporters take: records for a merged log, so
    their output names each engine, plain events otherwise.
    """

    def __init__(self, path: Path, lenient: bool) -> None:
        self.path = readable_file(path)
        try:
            self.merged = _names_engines(path)
        except OSError as exc:
            raise InputOutputError(f"cannot read {path}: {exc.strerror or exc}") from None
        self._reader = LogReader(path, lenient=lenient)
        self.records = Contiguous(self._reader.records(), self._on_gap)

    def _on_gap(self, error: SequenceError) -> bool:
        if self._reader.complete:
            return False  # a gap in an undamaged file is an error, not damage
        warn(f"{error}; reading stops there")
        return True

    @property
    def cut_off(self) -> bool:
        """Whether the file's last line was cut off (a write stopped half-way)."""
        return self._reader.truncated_line is not None

    @property
    def num_records(self) -> int:
        """Records read so far."""
        return self.records.num_records

    def nonempty(self) -> Iterator[Record]:
        """The records, refusing a log that holds none."""
        records = iter(self.records)
        first = next(records, None)
        if first is None:
            raise InputOutputError(f"{self.path}: the log holds no events")
        yield first
        yield from records

    def source(self) -> Source:
        """Records for a merged log, else its events; a log without events is refused."""
        if self.merged:
            return self.nonempty()
        return (event for _, event in self.nonempty())


_READER_WARNINGS = (TruncatedLogWarning, SkippedLineWarning)


@contextmanager
def printed_warnings() -> Iterator[None]:
    """A reader's damage reports raised inside, each printed in one line once the block is done.

    Any other warning (a library's deprecation, say) is issued again afterwards,
    through the filters in force, as if the block had not caught it.
    """
    caught: list[warnings.WarningMessage] = []
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", UserWarning)
            yield
    finally:
        for w in caught:
            if issubclass(w.category, _READER_WARNINGS):
                warn(w.message)
            else:
                warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)


@contextmanager
def open_log(path: Path, lenient: bool) -> Iterator[OpenLog]:
    """The log at ``path``, with the reader's warnings printed once the command is done.

    A ``ValueError`` raised while the log is read, other than a usage error,
    says what is wrong with the log: it becomes an :class:`InputOutputError`
    naming the file.
    """
    with printed_warnings():
        log = OpenLog(path, lenient)
        try:
            yield log
        except (UsageError, InputOutputError, *_NAMED_DAMAGE):
            raise
        except ValueError as exc:
            raise InputOutputError(f"{path}: {exc}") from exc
