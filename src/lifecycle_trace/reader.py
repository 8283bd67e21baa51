"""Reading a stored log as a stream: one line in memory at a time, whatever the file's size.

:class:`LogReader` iterates a JSON Lines log as typed events (or, with
:meth:`LogReader.records`, as ``(engine_id, event)`` pairs, which is how merged
logs of several engines are read). Damage is handled as :mod:`lifecycle_trace.store`
describes: a cut-short last line is dropped and reported, a corrupt line
elsewhere raises :class:`CorruptLogError` naming the file and line (or is
skipped with ``lenient=True``), an unknown type or version raises
:class:`UnsupportedEventError`. Because the reader cannot know a line is the
last before it reaches the end, an invalid-JSON line is held back one line:
the error is raised (or the line skipped) as soon as another line follows it.

A line may carry an ``engine`` key (written by ``lifecycle-trace merge``);
otherwise its engine is the ``engine_id`` of the log's latest EngineConfigured.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator
from typing import Any

import orjson

from lifecycle_trace._codec import DECODERS, decode
from minivllm.events import (
    EVENT_TYPES_BY_TAG,
    SCHEMA_VERSION,
    EngineConfigured,
    Event,
    EventDecodeError,
)

__all__ = [
    "ENGINE_KEY",
    "CorruptLogError",
    "LogReader",
    "SkippedLineWarning",
    "TruncatedLogWarning",
    "UnsupportedEventError",
    "iter_jsonl",
]

ENGINE_KEY = "engine"
"""The key naming a line's engine in a merged log."""

_READ_BUFFER = 1 << 20


class CorruptLogError(ValueError):
    """A line of a stored log is not a readable event."""

    def __init__(self, path: str, line_number: int, reason: str) -> None:
        self.path = path
        self.line_number = line_number
        self.reason = reason
        super().__init__(f"{path}:{line_number}: {reason}")


class UnsupportedEventError(ValueError):
    """A line holds an event type or schema version this library cannot read."""

    def __init__(self, path: str, line_number: int, reason: str) -> None:
        self.path = path
        self.line_number = line_number
        self.reason = reason
        super().__init__(f"{path}:{line_number}: {reason}")


class TruncatedLogWarning(UserWarning):
    """The last line of a log was cut short (a crash mid-write) and was dropped."""


class SkippedLineWarning(UserWarning):
    """A corrupt line was skipped because the log was read with ``lenient=True``."""


def classify(path: str, number: int, line: bytes) -> CorruptLogError | UnsupportedEventError:
    """Why one line failed to decode, as the exception to raise."""
    try:
        data: Any = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        return CorruptLogError(path, number, f"not valid JSON ({exc})")
    if not isinstance(data, dict):
        return CorruptLogError(path, number, f"expected a JSON object, got {type(data).__name__}")
    if "type" not in data:
        return CorruptLogError(path, number, "not an event: no 'type' key")
    tag = data["type"]
    if not isinstance(tag, str) or tag not in EVENT_TYPES_BY_TAG:
        known = sorted(EVENT_TYPES_BY_TAG)
        return UnsupportedEventError(path, number, f"unknown event type {tag!r}; known: {known}")
    if data.get("v") != SCHEMA_VERSION:
        return UnsupportedEventError(
            path,
            number,
            f"unsupported schema version {data.get('v')!r} for event type {tag!r} "
            f"(this library reads version {SCHEMA_VERSION})",
        )
    engine = data.get(ENGINE_KEY)
    if engine is not None and not isinstance(engine, str):
        return CorruptLogError(path, number, f"{ENGINE_KEY!r} must be a string, got {engine!r}")
    try:
        decode(data)
    except EventDecodeError as exc:
        return CorruptLogError(path, number, str(exc))
    return CorruptLogError(path, number, "unreadable event")


class LogReader:
    """One streaming pass over a stored log; iterate it for events, or :meth:`records`.

    After (or during) the pass, :attr:`truncated_line` and :attr:`skipped_lines`
    say what was dropped. A reader can be iterated once.
    """

    def __init__(self, path: str | os.PathLike[str], *, lenient: bool = False) -> None:
        self.path = os.fspath(path)
        self.lenient = lenient
        self.truncated_line: int | None = None
        self.skipped_lines: list[int] = []
        self._started = False

    @property
    def complete(self) -> bool:
        """Whether every line read so far was an event."""
        return self.truncated_line is None and not self.skipped_lines

    def __iter__(self) -> Iterator[Event]:
        for _, event in self._read(tagged=False):
            yield event

    def records(self) -> Iterator[tuple[str, Event]]:
        """``(engine_id, event)`` pairs: the line's ``engine`` key, else the log's own engine."""
        return self._read(tagged=True)

    def _read(self, *, tagged: bool) -> Iterator[tuple[str, Event]]:
        if self._started:
            raise RuntimeError(f"{self.path}: a LogReader reads its log once; make a new one")
        self._started = True
        decoders = DECODERS
        loads = orjson.loads
        engine = ""
        # An invalid-JSON line waits here until we know whether it was the last.
        pending: tuple[int, CorruptLogError] | None = None
        with open(self.path, "rb", buffering=_READ_BUFFER) as f:
            for number, line in enumerate(f, 1):
                try:
                    data = loads(line)
                    event = decoders[data["type"]](data)
                    if tagged:
                        tag = data.get(ENGINE_KEY)
                        if tag is None:
                            if type(event) is EngineConfigured:
                                engine = event.engine_id
                            tag = engine
                        elif type(tag) is not str:
                            raise TypeError(tag)
                except Exception:
                    if not line.strip():
                        continue
                    if pending is not None:
                        self._damaged(*pending)
                    pending = self._failed(number, line)
                    continue
                if pending is not None:
                    self._damaged(*pending)
                    pending = None
                yield (tag if tagged else ""), event
        if pending is not None:
            number = pending[0]
            self.truncated_line = number
            warnings.warn(
                f"{self.path}:{number}: last line is cut short (a crash mid-write?); dropped it",
                TruncatedLogWarning,
                stacklevel=3,
            )

    def _failed(self, number: int, line: bytes) -> tuple[int, CorruptLogError] | None:
        """Raise or skip a bad line now, or hold it back if it may be a cut-short last line."""
        error = classify(self.path, number, line)
        if isinstance(error, UnsupportedEventError):
            raise error
        if error.reason.startswith("not valid JSON"):
            return number, error
        self._damaged(number, error)
        return None

    def _damaged(self, number: int, error: CorruptLogError) -> None:
        if not self.lenient:
            raise error
        self.skipped_lines.append(number)
        warnings.warn(f"{error}; skipped (lenient)", SkippedLineWarning, stacklevel=4)


def iter_jsonl(path: str | os.PathLike[str], *, lenient: bool = False) -> LogReader:
    """A streaming reader over ``path``: iterate it for typed events, one line at a time."""
    return LogReader(path, lenient=lenient)
