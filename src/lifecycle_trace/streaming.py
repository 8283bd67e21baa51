"""One pass over the records of a log of one or several engines.

The inputs are ``(engine_id, event)`` records, as
:meth:`lifecycle_trace.reader.LogReader.records` yields them.
:func:`check_records` runs one :class:`~lifecycle_trace.check.InvariantChecker`
per engine; :class:`Contiguous` stops a stream at a sequence gap.
:func:`iter_timelines` (the fold's timelines, streamed) lives in
:mod:`lifecycle_trace.fold.timeline` and is re-exported here.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from collections.abc import Iterable
from collections.abc import Iterator
from operator import itemgetter
from typing import TYPE_CHECKING

from lifecycle_trace.fold.requests import Record
from lifecycle_trace.fold.timeline import iter_timelines
from lifecycle_trace.log.eventlog import SequenceError

if TYPE_CHECKING:
    from lifecycle_trace.check import Violation

__all__ = ["Contiguous", "Record", "check_records", "iter_timelines"]

# Records are checked in chunks, a run of one engine's events at a time.
_CHUNK = 4096
_engine_of = itemgetter(0)
_event_of = itemgetter(1)


def check_records(
    records: Iterable[Record], *, decisions: bool = True
) -> dict[str, list[Violation]]:
    """Check each engine's events with its own checker; every violation, by engine id.

    ``decisions=False`` checks the event rules only (for a slice of a log).
    """
    from lifecycle_trace.check import InvariantChecker  # imported on first use, as the package does

    checkers: dict[str, InvariantChecker] = {}
    source = iter(records)
    while chunk := list(itertools.islice(source, _CHUNK)):
        for engine, group in itertools.groupby(chunk, key=_engine_of):
            checker = checkers.get(engine)
            if checker is None:
                checker = checkers[engine] = InvariantChecker(decisions)
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
