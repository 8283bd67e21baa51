"""Reading a stored log as a stream: a chunk of lines in memory at a time, whatever its size.

:class:`LogReader` iterates a JSON Lines log as typed events (or, with
:meth:`LogReader.records`, as ``(engine_id, event)`` pairs, which is how merged
logs of several engines are read). Damage is handled as :mod:`lifecycle_trace.log.store`
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

import itertools
import os
import warnings
from collections.abc import Iterable
from collections.abc import Iterator
from typing import Any

import msgspec

from lifecycle_trace.log._codec import ENGINE_KEY
from lifecycle_trace.log._codec import Envelope
from lifecycle_trace.log._codec import decode_envelopes
from lifecycle_trace.log._codec import decode_event
from lifecycle_trace.log._codec import decode_events
from lifecycle_trace.log._codec import decode_line
from minivllm.events import EVENT_TYPES_BY_TAG
from minivllm.events import READABLE_SCHEMA_VERSIONS
from minivllm.events import SCHEMA_VERSION
from minivllm.events import EngineConfigured
from minivllm.events import Event

__all__ = [
    "ENGINE_KEY",
    "CorruptLogError",
    "LogReader",
    "SkippedLineWarning",
    "TruncatedLogWarning",
    "UnsupportedEventError",
    "iter_jsonl",
]

# The file is decoded a chunk of whole lines at a time: one msgspec call per
# chunk instead of one per line. A chunk holding a damaged line is read again
# line by line, to name the line and decide what to do with it.
_CHUNK = 1 << 18
_ANY = msgspec.json.Decoder()
_NO_ENGINE = Envelope()


class _LineError(ValueError):
    """A line of a stored log that cannot be read, named by path and line number."""

    def __init__(self, path: str, line_number: int, reason: str) -> None:
        self.path = path
        self.line_number = line_number
        self.reason = reason
        super().__init__(f"{path}:{line_number}: {reason}")


class CorruptLogError(_LineError):
    """A line of a stored log is not a readable event."""


class UnsupportedEventError(_LineError):
    """A line holds an event type or schema version this library cannot read."""


class TruncatedLogWarning(UserWarning):
    """The last line of a log was cut short (a crash mid-write) and was dropped."""


class SkippedLineWarning(UserWarning):
    """A corrupt line was skipped because the log was read with ``lenient=True``."""


def classify(path: str, number: int, line: bytes) -> CorruptLogError | UnsupportedEventError:
    """Why one line failed to decode, as the exception to raise."""
    try:
        data: Any = _ANY.decode(line)
    except msgspec.DecodeError as exc:
        return CorruptLogError(path, number, f"not valid JSON ({exc})")
    if not isinstance(data, dict):
        return CorruptLogError(path, number, f"expected a JSON object, got {type(data).__name__}")
    if "type" not in data:
        return CorruptLogError(path, number, "not an event: no 'type' key")
    tag = data["type"]
    if not isinstance(tag, str) or tag not in EVENT_TYPES_BY_TAG:
        known = sorted(EVENT_TYPES_BY_TAG)
        return UnsupportedEventError(path, number, f"unknown event type {tag!r}; known: {known}")
    version = data.get("v", SCHEMA_VERSION)
    if type(version) is not int or version not in READABLE_SCHEMA_VERSIONS:
        readable = ", ".join(map(str, READABLE_SCHEMA_VERSIONS))
        return UnsupportedEventError(
            path,
            number,
            f"unsupported schema version {version!r} for event type {tag!r} "
            f"(this library reads versions {readable})",
        )
    engine = data.get(ENGINE_KEY)
    if engine is not None and not isinstance(engine, str):
        return CorruptLogError(path, number, f"{ENGINE_KEY!r} must be a string, got {engine!r}")
    try:
        decode_line(line)
    except (msgspec.ValidationError, ValueError) as exc:
        return CorruptLogError(path, number, f"event type {tag!r}: {exc}")
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
        self._engine = ""  # the engine of lines without an engine key
        self._pending: tuple[int, CorruptLogError] | None = None
        self._counted = (0, 0)  # (bytes, lines) of the file counted so far

    @property
    def complete(self) -> bool:
        """Whether every line read so far was an event."""
        return self.truncated_line is None and not self.skipped_lines

    def __iter__(self) -> Iterator[Event]:
        for batch in self.batches():
            yield from batch

    def records(self) -> Iterator[tuple[str, Event]]:
        """``(engine_id, event)`` pairs: the line's ``engine`` key, else the log's own engine."""
        for engine, events in self.runs():
            for event in events:
                yield engine, event

    def batches(self) -> Iterator[list[Event]]:
        """The events a chunk of the file at a time (the cheapest way to read them all)."""
        return self._read(tagged=False)

    def runs(self) -> Iterator[tuple[str, list[Event]]]:
        """``(engine_id, events)``: consecutive events of one engine, at most a chunk of them."""
        for runs in self._read(tagged=True):
            yield from runs

    def _read(self, *, tagged: bool) -> Iterator[list[Any]]:
        if self._started:
            raise RuntimeError(f"{self.path}: a LogReader reads its log once; make a new one")
        self._started = True
        # An invalid-JSON line waits in _pending until we know whether it was the last.
        offset = 0  # bytes before the current chunk
        rest = b""
        try:
            with open(self.path, "rb") as f:
                while block := f.read(_CHUNK):
                    block = rest + block
                    cut = block.rfind(b"\n") + 1
                    chunk, rest = block[:cut], block[cut:]
                    if chunk:
                        yield from self._chunk(chunk, offset, tagged)
                        offset += len(chunk)
        except OSError as exc:
            if exc.filename is not None:
                raise
            raise OSError(exc.errno, exc.strerror or str(exc), self.path) from exc
        if rest:
            yield from self._chunk(rest, offset, tagged)
        if self._pending is not None:
            last = self._pending[0]
            self.truncated_line = last
            warnings.warn(
                f"{self.path}:{last}: last line is cut short (a crash mid-write?); dropped it",
                TruncatedLogWarning,
                stacklevel=3,
            )

    def _lines_before(self, offset: int) -> int:
        """How many lines the file has before byte ``offset`` (counted only for damage reports)."""
        counted, lines = self._counted
        with open(self.path, "rb") as f:
            f.seek(counted)
            while counted < offset:
                block = f.read(min(_CHUNK, offset - counted))
                lines += block.count(b"\n")
                counted += len(block)
        self._counted = (counted, lines)
        return lines

    def _chunk(self, chunk: bytes, offset: int, tagged: bool) -> Iterator[list[Any]]:
        """The events (or records) of a run of whole lines starting at byte ``offset``."""
        try:
            events = decode_events(chunk)
            envelopes = decode_envelopes(chunk) if tagged else None
        except (msgspec.DecodeError, msgspec.ValidationError, ValueError):
            yield from self._lines(chunk, self._lines_before(offset), tagged)
            return
        if not events:
            return
        if self._pending is not None:
            self._damaged(*self._pending)
            self._pending = None
        if not tagged:
            yield events
        elif envelopes is None and EngineConfigured not in map(type, events):
            # The usual case, a log of one engine: every line belongs to the current one.
            yield [(self._engine, events)]
        else:
            yield self._runs(events, envelopes or itertools.repeat(_NO_ENGINE))

    def _runs(
        self, events: list[Event], envelopes: Iterable[Envelope]
    ) -> list[tuple[str, list[Event]]]:
        """Split ``events`` where the engine changes: a line's key, else the latest configured."""
        runs: list[tuple[str, list[Event]]] = []
        engine = self._engine
        for event, envelope in zip(events, envelopes, strict=False):  # envelopes may repeat
            tag = envelope.engine
            if tag is None:
                if type(event) is EngineConfigured:
                    engine = event.engine_id
                tag = engine
            if not runs or runs[-1][0] != tag:
                runs.append((tag, []))
            runs[-1][1].append(event)
        self._engine = engine
        return runs

    def _lines(self, chunk: bytes, number: int, tagged: bool) -> Iterator[list[Any]]:
        """The chunk with a damaged line in it, one line at a time; its first is line number + 1."""
        for offset, line in enumerate(chunk.split(b"\n"), number + 1):
            if not line.strip():
                continue
            try:
                event, envelope = decode_line(line) if tagged else (decode_event(line), _NO_ENGINE)
            except (msgspec.DecodeError, msgspec.ValidationError, ValueError):
                if self._pending is not None:
                    self._damaged(*self._pending)
                self._pending = self._failed(offset, line)
                continue
            if self._pending is not None:
                self._damaged(*self._pending)
                self._pending = None
            yield self._runs([event], [envelope]) if tagged else [event]

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
