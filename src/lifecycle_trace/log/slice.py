"""Cutting a log down to the requests that matter, as a log the other commands accept.

A slice keeps, for each engine: its EngineConfigured; every event of the
selected requests, for their whole lives (from RequestAdded to the step in
which they finish, blocks freed included); and the step events of the steps in
which a selected request was live, *projected* onto the selected requests. A
projected StepStarted/StepFinished reports the running and waiting counts,
scheduled tokens, preempted and finished ids of the selected requests only,
and the KV blocks they hold, as if they had been the engine's only requests;
steps in which none was live are left out. Sequence numbers are renumbered
from 0 without gaps, so the checker's event rules run on a slice as on a full
log (its decision rules do not: the scheduler also weighed the requests the
slice left out; ``check --bounds-only``); each line also carries ``src_seq``,
its sequence number in the original.

Selecting by steps (``A:B``, half-open, either end may be omitted) selects
every request live at any step from A to B-1, again for its whole life, so a
slice may reach outside the window; inside the window it holds every live
request, so its step events there match the original's (the KV counts too,
without prefix caching). That takes two passes over the input, both
streaming; memory follows the number of selected requests.

Every line of a slice names its engine (``engine``), so slices of merged logs
stay attributed.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from collections.abc import Iterable
from collections.abc import Iterator
from types import MappingProxyType

import attrs
import msgspec

from lifecycle_trace._output import replacing
from lifecycle_trace.fold.requests import LogFold
from lifecycle_trace.fold.requests import Record
from lifecycle_trace.fold.requests import RequestFold
from lifecycle_trace.log._codec import encode_line_with
from lifecycle_trace.log.reader import ENGINE_KEY
from lifecycle_trace.log.reader import LogReader
from minivllm.events import BlocksAllocated
from minivllm.events import BlocksCached
from minivllm.events import BlocksFreed
from minivllm.events import CounterUpdated
from minivllm.events import EngineConfigured
from minivllm.events import Event
from minivllm.events import RequestAdded
from minivllm.events import StatusChanged
from minivllm.events import StepFinished
from minivllm.events import StepStarted
from minivllm.request import RequestStatus

__all__ = ["SOURCE_SEQ_KEY", "StepRange", "parse_step_range", "slice_log", "slice_records"]

SOURCE_SEQ_KEY = "src_seq"
"""The key under which a slice keeps each event's sequence number in the original log."""

Selector = Callable[[str, RequestAdded], bool]
"""Whether a request (by engine id and its RequestAdded) belongs in the slice."""

_PREEMPTED = RequestStatus.PREEMPTED


@attrs.frozen
class StepRange:
    """Steps ``start`` (inclusive) to ``stop`` (exclusive); None leaves that end open."""

    start: int | None = None
    stop: int | None = None

    def __attrs_post_init__(self) -> None:
        if self.start is not None and self.stop is not None and self.stop <= self.start:
            raise ValueError(f"step range {self.start}:{self.stop} is empty; write A:B with A < B")


def parse_step_range(text: str) -> StepRange:
    """Parse ``A:B``, ``A:`` or ``:B`` (non-negative integers) into a :class:`StepRange`."""
    start, colon, stop = text.partition(":")
    if not colon:
        raise ValueError(f"step range {text!r}: expected A:B (for example 10:20, 10: or :20)")
    try:
        bounds = [None if not part.strip() else int(part) for part in (start, stop)]
    except ValueError:
        raise ValueError(f"step range {text!r}: A and B must be integers") from None
    if any(b is not None and b < 0 for b in bounds):
        raise ValueError(f"step range {text!r}: steps are non-negative")
    return StepRange(bounds[0], bounds[1])


class _EngineSlice:
    """One engine's part of a slice: the kept requests, and its step events projected onto them.

    Its fold sees only the selected requests, so the fold's queues and block
    count are the projection: the engine as if they had been its only requests.
    """

    def __init__(self, selected: Selector, engine: str) -> None:
        self.fold = RequestFold(
            engine or None, select=lambda e: selected(engine, e), keep_finished=False, history=False
        )
        self.in_step = False
        self.next_seq = 0

    def renumber(self, event: Event, **changes: object) -> Event:
        """A copy of ``event`` with the slice's next sequence number and ``changes``."""
        seq = self.next_seq
        self.next_seq = seq + 1
        return msgspec.structs.replace(event, seq=seq, **changes)

    def keep(self, event: Event) -> Event | None:
        """The event as the slice holds it, or None if the slice leaves it out."""
        fold = self.fold
        if isinstance(event, StepFinished):
            projected = self._step_finished(event)
            fold.feed(event)  # after the projection: it retires the requests that finished
            return projected
        fold.feed(event)
        if isinstance(event, StepStarted):
            if not fold.live:
                return None  # an abort between steps still gets the step that follows it
            self.in_step = True
            return self.renumber(event, num_running=fold.num_running, num_waiting=fold.num_waiting)
        if isinstance(event, EngineConfigured):
            return self.renumber(event)
        if isinstance(event, RequestAdded):
            kept = fold.live.get(event.request_id)
            return self.renumber(event) if kept is not None and kept.life == event.seq else None
        per_request = StatusChanged | CounterUpdated | BlocksAllocated | BlocksFreed | BlocksCached
        if not isinstance(event, per_request):
            raise TypeError(f"not an engine event: {event!r}")
        return self.renumber(event) if event.request_id in fold.live else None

    def _step_finished(self, e: StepFinished) -> Event | None:
        fold = self.fold
        if not self.in_step and not fold.finished:
            return None
        self.in_step = False
        kept = fold.live
        # With prefix caching shared blocks count once in the engine's figure and
        # once per holder here, so the engine's figure caps ours.
        used = min(fold.num_blocks_held, e.num_used_blocks)
        usable = fold.config.num_gpu_blocks - 1 if fold.config is not None else 0
        return self.renumber(
            e,
            num_scheduled_tokens=MappingProxyType(
                {r: n for r, n in e.num_scheduled_tokens.items() if r in kept}
            ),
            preempted_req_ids=tuple(r for r in e.preempted_req_ids if r in kept),
            finished_req_ids=tuple(r for r in e.finished_req_ids if r in kept),
            num_running=fold.num_running,
            num_waiting=fold.num_waiting,
            num_free_blocks=usable - used,
            num_used_blocks=used,
        )


def slice_records(
    records: Iterable[Record], selected: Selector, num_selected: int | None = None
) -> Iterator[tuple[str, Event, int]]:
    """``(engine, event, original seq)`` for every event the slice keeps, renumbered per engine.

    With ``num_selected`` (how many requests ``selected`` accepts in all), reading
    stops once that many have finished and their last step has ended.
    """
    engines: dict[str, _EngineSlice] = {}
    for engine, event in records:
        part = engines.get(engine)
        if part is None:
            part = engines[engine] = _EngineSlice(selected, engine)
        kept = part.keep(event)
        if kept is not None:
            yield engine, kept, event.seq
            if (
                num_selected is not None
                and type(kept) is StepFinished
                and sum(p.fold.num_finished for p in engines.values()) >= num_selected
                and not any(p.in_step or p.fold.finished for p in engines.values())
            ):
                return


def _live_in(path: str, steps: StepRange, lenient: bool) -> set[tuple[str, int]]:
    """(engine, RequestAdded seq) of every request live at some step of ``steps``: pass one."""
    start = -1 if steps.start is None else steps.start
    stop = steps.stop
    # Per engine: steps are each engine's own, and a merged log interleaves engines.
    folds = LogFold(keep_finished=False, strict=False, history=False)
    chosen: set[tuple[str, int]] = set()
    for engine, event in LogReader(path, lenient=lenient).records():
        if stop is not None and event.step >= stop:
            continue  # nothing this engine adds from here on is live in the window
        fold = folds.fold(engine)
        fold.feed(event)
        if event.step < start:
            continue
        if isinstance(event, RequestAdded):
            chosen.add((engine, event.seq))
        elif isinstance(event, StatusChanged) and event.new_status > _PREEMPTED:
            t = fold.live.get(event.request_id)
            if t is not None:
                chosen.add((engine, t.life))
        elif isinstance(event, StepStarted):
            chosen.update((engine, t.life) for t in fold.live.values() if not t.finished)
    return chosen


def slice_log(
    source: str | os.PathLike[str],
    output: str | os.PathLike[str],
    *,
    requests: Iterable[str] = (),
    steps: StepRange | None = None,
    lenient: bool = False,
) -> int:
    """Write the slice of ``source`` for some request ids or a step range; return its size.

    Exactly one of ``requests`` and ``steps`` must be given. See the module docstring.
    ``output`` is replaced only once the slice is complete, and never when it
    is ``source`` (:mod:`lifecycle_trace._output`).
    """
    path = os.fspath(source)
    wanted = frozenset(requests)
    if bool(wanted) == (steps is not None):
        raise ValueError("slice: give request ids or a step range (exactly one of them)")
    selected: Selector
    num_selected: int | None = None
    if steps is not None:
        chosen = _live_in(path, steps, lenient)
        num_selected = len(chosen)

        def selected(engine: str, e: RequestAdded) -> bool:
            return (engine, e.seq) in chosen
    else:

        def selected(engine: str, e: RequestAdded) -> bool:
            return e.request_id in wanted

    count = 0
    with (
        replacing(output, inputs=[path]) as partial,
        open(partial, "wb", buffering=1 << 20) as f,
    ):
        records = LogReader(path, lenient=lenient).records()
        for engine, event, src in slice_records(records, selected, num_selected):
            f.write(encode_line_with(event, {ENGINE_KEY: engine, SOURCE_SEQ_KEY: src}))
            count += 1
    return count
