"""The log is the store: events as JSON Lines, written live or in bulk, read back as typed events.

Each line is ``minivllm.events.event_to_dict(event)`` (type tag ``type`` and
schema version ``v`` on every line). Extra keys are ignored on reading, so a
line written by :mod:`lifecycle_trace.logging` (the same dict plus
structlog's ``event``, ``level`` and ``timestamp``) reads back the same way:
the structured log and the stored log are one format.

Reading is strict about damage, with one exception for crashes: a last line
that is not valid JSON (a write cut short) is dropped, and reported both in
:attr:`LoadedLog.truncated_line` and as a :class:`TruncatedLogWarning`. Any
other unreadable line raises :class:`CorruptLogError` naming the file and
line, unless ``lenient=True``, which skips it with a :class:`SkippedLineWarning`.
An event type or schema version this library does not know always raises
:class:`UnsupportedEventError`: it is not damage, and guessing would be wrong.

Cost: about a microsecond per event each way (orjson plus generated codecs).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterable
from pathlib import Path
from types import TracebackType
from typing import IO, Any

import attrs
import orjson

from lifecycle_trace._codec import DECODERS, decode, encode_line
from lifecycle_trace.timeline import Timeline, build_timelines
from minivllm.events import EVENT_TYPES_BY_TAG, SCHEMA_VERSION, Event, EventDecodeError

__all__ = [
    "CorruptLogError",
    "JsonlWriter",
    "LoadedLog",
    "SkippedLineWarning",
    "TruncatedLogWarning",
    "UnsupportedEventError",
    "read_jsonl",
    "replay",
    "write_jsonl",
]


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


@attrs.frozen
class LoadedLog:
    """What :func:`read_jsonl` found: the events, and what it had to drop."""

    path: str
    events: list[Event] = attrs.field(eq=False)
    truncated_line: int | None = None
    skipped_lines: tuple[int, ...] = ()

    @property
    def complete(self) -> bool:
        """Whether every line was read."""
        return self.truncated_line is None and not self.skipped_lines


def write_jsonl(events: Iterable[Event], path: str | os.PathLike[str]) -> int:
    """Write ``events`` to ``path`` as JSON Lines (replacing it); return how many."""
    count = 0
    # One line at a time into a large buffer: holding every line first costs more
    # in allocation than the encoding itself.
    with open(path, "wb", buffering=1 << 20) as f:
        write = f.write
        for event in events:
            write(encode_line(event))
            count += 1
    return count


class JsonlWriter:
    """A bus handler that appends each event to a JSON Lines file as it happens.

    Lines are buffered; :meth:`close` (or leaving the ``with`` block) flushes.
    A crash can cut the last line short, which :func:`read_jsonl` reports.
    """

    def __init__(self, target: str | os.PathLike[str] | IO[bytes]) -> None:
        if isinstance(target, str | os.PathLike):
            self._file: IO[bytes] = open(target, "wb")  # noqa: SIM115 - closed by close()
            self._owned = True
        else:
            self._file = target
            self._owned = False
        self._write = self._file.write
        self.num_written = 0

    def __call__(self, event: Event) -> None:
        """Append one event."""
        self._write(encode_line(event))
        self.num_written += 1

    def flush(self) -> None:
        """Push buffered lines to the file."""
        self._file.flush()

    def close(self) -> None:
        """Flush, and close the file if this writer opened it."""
        if self._owned:
            self._file.close()
        else:
            self._file.flush()

    def __enter__(self) -> JsonlWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _classify(path: str, number: int, line: bytes) -> CorruptLogError | UnsupportedEventError:
    """Why one line failed to decode."""
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
    try:
        decode(data)
    except EventDecodeError as exc:
        return CorruptLogError(path, number, str(exc))
    return CorruptLogError(path, number, "unreadable event")


def read_jsonl(path: str | os.PathLike[str], *, lenient: bool = False) -> LoadedLog:
    """Read a stored (or structlog-written) JSON Lines log back into typed events.

    Blank lines are ignored. See the module docstring for how damage is handled.
    """
    name = os.fspath(path)
    lines = Path(path).read_bytes().split(b"\n")
    while lines and not lines[-1].strip():
        lines.pop()
    last = len(lines)
    events: list[Event] = []
    append = events.append
    loads = orjson.loads
    truncated: int | None = None
    skipped: list[int] = []
    decoders = DECODERS
    for number, line in enumerate(lines, 1):
        try:
            data = loads(line)
            append(decoders[data["type"]](data))
        except Exception:
            if not line.strip():
                continue
            error = _classify(name, number, line)
            if isinstance(error, UnsupportedEventError):
                raise error from None
            if number == last and error.reason.startswith("not valid JSON"):
                truncated = number
                warnings.warn(
                    f"{name}:{number}: last line is cut short (a crash mid-write?); dropped it",
                    TruncatedLogWarning,
                    stacklevel=2,
                )
            elif lenient:
                skipped.append(number)
                warnings.warn(f"{error}; skipped (lenient)", SkippedLineWarning, stacklevel=2)
            else:
                raise error from None
    return LoadedLog(name, events, truncated, tuple(skipped))


def replay(path: str | os.PathLike[str], *, lenient: bool = False) -> dict[str, Timeline]:
    """Rebuild every request's timeline from a stored log."""
    return build_timelines(read_jsonl(path, lenient=lenient).events)
