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

Writing live is :class:`~lifecycle_trace.log.sink.JsonlWriter` (the streaming sink);
reading without holding the events is :func:`~lifecycle_trace.log.reader.iter_jsonl`.

Cost: a few hundred nanoseconds per event each way (msgspec, a batch at a time).
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterable
from collections.abc import Iterator

import attrs

from lifecycle_trace._output import replacing
from lifecycle_trace.fold.timeline import Timeline
from lifecycle_trace.fold.timeline import build_timelines
from lifecycle_trace.log._codec import encode_lines
from lifecycle_trace.log.reader import CorruptLogError
from lifecycle_trace.log.reader import LogReader
from lifecycle_trace.log.reader import SkippedLineWarning
from lifecycle_trace.log.reader import TruncatedLogWarning
from lifecycle_trace.log.reader import UnsupportedEventError
from lifecycle_trace.log.reader import iter_jsonl
from lifecycle_trace.log.sink import JsonlWriter
from minivllm.events import Event

__all__ = [
    "CorruptLogError",
    "JsonlWriter",
    "LoadedLog",
    "SkippedLineWarning",
    "TruncatedLogWarning",
    "UnsupportedEventError",
    "iter_jsonl",
    "read_jsonl",
    "replay",
    "write_jsonl",
]


_BATCH = 4096


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
    """Write ``events`` to ``path`` as JSON Lines (replacing it once complete); return how many."""
    count = 0
    # A batch at a time: one encoder call per batch, and never the whole log in memory twice.
    source = iter(events)
    with replacing(path) as partial, open(partial, "wb") as f:
        while batch := list(itertools.islice(source, _BATCH)):
            f.write(encode_lines(batch))
            count += len(batch)
    return count


def read_jsonl(path: str | os.PathLike[str], *, lenient: bool = False) -> LoadedLog:
    """Read a stored (or structlog-written) JSON Lines log back into typed events.

    Blank lines are ignored. See the module docstring for how damage is handled;
    :func:`~lifecycle_trace.log.reader.iter_jsonl` reads the same way without holding the events.
    """
    reader = LogReader(path, lenient=lenient)
    events: list[Event] = []
    for batch in reader.batches():
        events.extend(batch)
    return LoadedLog(reader.path, events, reader.truncated_line, tuple(reader.skipped_lines))


def replay(path: str | os.PathLike[str], *, lenient: bool = False) -> dict[str, Timeline]:
    """Rebuild every request's timeline from a stored log of one engine, reading it as a stream.

    A merged log of several engines raises ``ValueError``: its request ids may
    collide; fold it with :func:`lifecycle_trace.streaming.iter_timelines`.
    """
    runs = _one_engine(iter_jsonl(path, lenient=lenient).runs(), path)
    return build_timelines(itertools.chain.from_iterable(runs))


def _one_engine(
    runs: Iterable[tuple[str, list[Event]]], path: str | os.PathLike[str]
) -> Iterator[list[Event]]:
    """The events of ``runs``, refusing a second engine."""
    first: str | None = None
    for engine, events in runs:
        if first is None:
            first = engine
        elif engine != first:
            raise ValueError(
                f"{os.fspath(path)}: a merged log of several engines ({first!r}, {engine!r}); "
                f"fold it per engine with iter_timelines(iter_jsonl(path).records())"
            )
        yield events
