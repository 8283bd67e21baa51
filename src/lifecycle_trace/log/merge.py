"""Combining the logs of several engines (data-parallel ranks, separate processes) into one.

Each input log names its engine in its EngineConfigured (``engine_id``); the
merged log is every input's events ordered by ``ts_ns``, each line carrying
``engine`` so that readers give every event back to its engine. Within an
engine the original order and sequence numbers are kept, so each engine's
stream in the merged log is exactly its original log, and the tools fold and
check each engine on its own (request ids may repeat across engines).

Times are compared as they are: the default clock, ``time.monotonic_ns``, is
shared by the processes of one machine, but not across machines, and a merge
of logs from several machines is only as ordered as their clocks agree.
Ties are broken by the order of the inputs. The merge streams: it holds one
event per input, and reads each input once.
"""

from __future__ import annotations

import heapq
import os
from collections.abc import Iterator
from collections.abc import Sequence

from lifecycle_trace._output import replacing
from lifecycle_trace.fold.requests import Record
from lifecycle_trace.log._codec import encode_line_with
from lifecycle_trace.log.reader import ENGINE_KEY
from lifecycle_trace.log.reader import LogReader
from minivllm.events import Event

__all__ = ["DuplicateEngineError", "merge_logs"]


class DuplicateEngineError(ValueError):
    """Two inputs of a merge name the same engine, so their requests could not be told apart."""


def _keyed(
    paths: list[str], index: int, records: Iterator[Record], owner: dict[str, int]
) -> Iterator[tuple[int, int, str, Event]]:
    """Sort keys for one input's records, checking that no other input holds its engines."""
    mine: set[str] = set()
    for engine, event in records:
        if engine not in mine:
            other = owner.setdefault(engine, index)
            if other != index:
                raise DuplicateEngineError(
                    f"merge: {paths[other]} and {paths[index]} both hold engine {engine!r}; "
                    f"give each engine its own id (LLMEngine(engine_id=...))"
                )
            mine.add(engine)
        yield event.ts_ns, index, engine, event


def merge_logs(
    sources: Sequence[str | os.PathLike[str]],
    output: str | os.PathLike[str],
    *,
    lenient: bool = False,
) -> int:
    """Merge ``sources`` into ``output`` by time, each line naming its engine; return the count.

    Raises :class:`DuplicateEngineError` if two inputs hold the same engine id;
    ``output`` is replaced only once the merge is complete, and never when it
    is one of the inputs (:mod:`lifecycle_trace._output`).
    """
    paths = [os.fspath(p) for p in sources]
    if not paths:
        raise ValueError("merge: no input logs")
    owner: dict[str, int] = {}
    streams = [
        _keyed(paths, i, LogReader(p, lenient=lenient).records(), owner)
        for i, p in enumerate(paths)
    ]
    count = 0
    # A half-merged log would read as a complete one: it replaces output only once whole.
    with replacing(output, inputs=paths) as partial, open(partial, "wb", buffering=1 << 20) as f:
        # heapq.merge keeps each input's own order, so per-engine sequences stay intact.
        for _, _, engine, event in heapq.merge(*streams, key=lambda item: item[:2]):
            f.write(encode_line_with(event, {ENGINE_KEY: engine}))
            count += 1
    return count
