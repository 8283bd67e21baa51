"""One-pass folds over a log of one or several engines, holding only what is still live.

The inputs are ``(engine_id, event)`` records, as
:meth:`lifecycle_trace.reader.LogReader.records` yields them; each engine's
events go to that engine's own fold, so request ids that collide across the
engines of a merged log never meet. :func:`iter_timelines` hands out each
request's timeline once its finishing step has ended and forgets it;
:func:`check_records` runs one :class:`~lifecycle_trace.checker.InvariantChecker`
per engine; :class:`Contiguous` stops a stream at a sequence gap.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Iterator
from operator import itemgetter
from typing import TYPE_CHECKING

from lifecycle_trace.eventlog import SequenceError
from lifecycle_trace.timeline import Timeline, TimelineBuilder
from minivllm.events import Event

if TYPE_CHECKING:
    from lifecycle_trace.checker import Violation

__all__ = ["Contiguous", "Record", "check_records", "iter_timelines"]

Record = tuple[str, Event]
"""An event and the id of the engine that emitted it."""

# Events are folded in chunks so the builder's inlined loop does the work and
# retired timelines are handed out every few thousand events.
_CHUNK = 4096
_engine_of = itemgetter(0)
_event_of = itemgetter(1)


def iter_timelines(records: Iterable[Record]) -> Iterator[Timeline]:
    """Every request's timeline: finished ones soon after their last step, the others at the end.

    Memory follows the number of live requests per engine, not the log's length.
    """
    retired: list[Timeline] = []
    builders: dict[str, TimelineBuilder] = {}
    source = iter(records)
    while chunk := list(itertools.islice(source, _CHUNK)):
        for engine, group in itertools.groupby(chunk, key=_engine_of):
            builder = builders.get(engine)
            if builder is None:
                builder = builders[engine] = TimelineBuilder(on_retire=retired.append)
            builder.feed_all(map(_event_of, group))
        yield from retired
        retired.clear()
    for builder in builders.values():
        builder.retire()
        yield from retired
        retired.clear()
        yield from builder.timelines().values()


def check_records(records: Iterable[Record]) -> dict[str, list[Violation]]:
    """Check each engine's events with its own checker; every violation, by engine id."""
    from lifecycle_trace.checker import (
        InvariantChecker,  # imported on first use, as the package does
    )

    checkers: dict[str, InvariantChecker] = {}
    source = iter(records)
    while chunk := list(itertools.islice(source, _CHUNK)):
        for engine, group in itertools.groupby(chunk, key=_engine_of):
            checker = checkers.get(engine)
            if checker is None:
                checker = checkers[engine] = InvariantChecker()
            for event in map(_event_of, group):
                checker(event)
    return {engine: checker.finish() for engine, checker in checkers.items()}


class Contiguous:
    """Records passed through while each engine's sequence numbers follow without a gap.

    At a gap, ``on_gap(error)`` decides: True stops the stream there, False
    raises the :class:`~lifecycle_trace.eventlog.SequenceError`; without
    ``on_gap`` it always raises, since a fold past a hole would be quietly
    wrong. ``num_records`` counts what went through.
    """

    def __init__(
        self, records: Iterable[Record], on_gap: Callable[[SequenceError], bool] | None = None
    ) -> None:
        self._records = records
        self._on_gap = on_gap
        self.num_records = 0

    def __iter__(self) -> Iterator[Record]:
        expected: dict[str, int] = {}
        count = 0
        try:
            for record in self._records:
                engine, event = record
                seq = event.seq
                want = expected.get(engine)
                if want is not None and seq != want:
                    error = SequenceError(want, seq, event)
                    if self._on_gap is not None and self._on_gap(error):
                        return
                    raise error
                expected[engine] = seq + 1
                count += 1
                yield record
        finally:
            self.num_records = count
