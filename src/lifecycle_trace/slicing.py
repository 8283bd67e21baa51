"""Cutting a log down to the requests that matter, as a log the other commands accept.

A slice keeps, for each engine: its EngineConfigured; every event of the
selected requests, for their whole lives (from RequestAdded to the step in
which they finish, blocks freed included); and the step events of the steps in
which a selected request was live, *projected* onto the selected requests. A
projected StepStarted/StepFinished reports the running and waiting counts,
scheduled tokens, preempted and finished ids of the selected requests only,
and the KV blocks they hold, as if they had been the engine's only requests;
steps in which none was live are left out. Sequence numbers are renumbered
from 0 without gaps, so the invariant checker runs on a slice as on a full
log; each line also carries ``src_seq``, its sequence number in the original.

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
from collections.abc import Callable, Iterable, Iterator
from types import MappingProxyType

import attrs
import msgspec

from lifecycle_trace.log._codec import encode_line_with
from lifecycle_trace.reader import ENGINE_KEY, LogReader
from lifecycle_trace.streaming import Record
from minivllm.events import (
    BlocksAllocated,
    BlocksFreed,
    CounterUpdated,
    EngineConfigured,
    Event,
    RequestAdded,
    StatusChanged,
    StepFinished,
    StepStarted,
)
from minivllm.request import RequestStatus

__all__ = ["SOURCE_SEQ_KEY", "StepRange", "parse_step_range", "slice_log", "slice_records"]

SOURCE_SEQ_KEY = "src_seq"
"""The key under which a slice keeps each event's sequence number in the original log."""

Selector = Callable[[str, RequestAdded], bool]
"""Whether a request (by engine id and its RequestAdded) belongs in the slice."""

_RUNNING = RequestStatus.RUNNING
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
    """One engine's part of a slice: the kept requests, and its step events projected onto them."""

    def __init__(self, selected: Selector, engine: str) -> None:
        self.selected = selected
        self.engine = engine
        self.status: dict[str, RequestStatus] = {}  # live selected requests
        self.blocks: dict[str, int] = {}
        self.ended: set[str] = set()  # selected requests that finished in this step
        self.num_running = 0
        self.num_waiting = 0
        self.in_step = False
        self.next_seq = 0
        self.usable = 0
        self.num_done = 0

    def renumber(self, event: Event, **changes: object) -> Event:
        """A copy of ``event`` with the slice's next sequence number and ``changes``."""
        seq = self.next_seq
        self.next_seq = seq + 1
        return msgspec.structs.replace(event, seq=seq, **changes)

    def keep(self, event: Event) -> Event | None:
        """The event as the slice holds it, or None if the slice leaves it out."""
        if isinstance(event, StepStarted):
            return self._step_started(event)
        if isinstance(event, StepFinished):
            return self._step_finished(event)
        if isinstance(event, EngineConfigured):
            self.usable = event.num_gpu_blocks - 1
            return self.renumber(event)
        if isinstance(event, RequestAdded):
            if not self.selected(self.engine, event):
                return None
            self.status[event.request_id] = RequestStatus.WAITING
            self.blocks[event.request_id] = 0
            self.num_waiting += 1
            return self.renumber(event)
        if not isinstance(event, StatusChanged | CounterUpdated | BlocksAllocated | BlocksFreed):
            raise TypeError(f"not an engine event: {event!r}")
        rid = event.request_id
        if rid not in self.status and rid not in self.ended:
            return None
        if isinstance(event, StatusChanged):
            self._status(rid, event)
        elif isinstance(event, BlocksAllocated):
            held = self.blocks.get(rid, 0)
            self.blocks[rid] = held + event.num_new_blocks + event.num_cached_blocks
        elif isinstance(event, BlocksFreed):
            self.blocks[rid] = 0
        return self.renumber(event)

    def _status(self, rid: str, e: StatusChanged) -> None:
        old, new = e.old_status, e.new_status
        if old is _RUNNING:
            self.num_running -= 1
        else:
            self.num_waiting -= 1
        if new is _RUNNING:
            self.num_running += 1
        elif new > _PREEMPTED:
            del self.status[rid]
            self.ended.add(rid)
            self.num_done += 1
            return
        else:
            self.num_waiting += 1
        self.status[rid] = new

    def _step_started(self, e: StepStarted) -> Event | None:
        if not self.status and not self.ended:
            return None  # an abort between steps still gets the step that follows it
        self.in_step = True
        return self.renumber(e, num_running=self.num_running, num_waiting=self.num_waiting)

    def _step_finished(self, e: StepFinished) -> Event | None:
        if not self.in_step and not self.ended:
            return None
        self.in_step = False
        kept = self.status.keys() | self.ended
        held = sum(self.blocks.values())
        # With prefix caching shared blocks count once in the engine's figure and
        # once per holder here, so the engine's figure caps ours.
        used = min(held, e.num_used_blocks)
        projected = self.renumber(
            e,
            num_scheduled_tokens=MappingProxyType(
                {r: n for r, n in e.num_scheduled_tokens.items() if r in kept}
            ),
            preempted_req_ids=tuple(r for r in e.preempted_req_ids if r in kept),
            finished_req_ids=tuple(r for r in e.finished_req_ids if r in kept),
            num_running=self.num_running,
            num_waiting=self.num_waiting,
            num_free_blocks=self.usable - used,
            num_used_blocks=used,
        )
        for rid in self.ended:
            if rid not in self.status:
                self.blocks.pop(rid, None)
        self.ended.clear()
        return projected


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
                and sum(p.num_done for p in engines.values()) >= num_selected
                and not any(p.in_step or p.ended for p in engines.values())
            ):
                return


def _live_in(path: str, steps: StepRange, lenient: bool) -> set[tuple[str, int]]:
    """(engine, RequestAdded seq) of every request live at some step of ``steps``: pass one."""
    start = -1 if steps.start is None else steps.start
    stop = steps.stop
    # Per engine: steps are each engine's own, and a merged log interleaves engines.
    live: dict[str, dict[str, int]] = {}
    chosen: set[tuple[str, int]] = set()
    for engine, event in LogReader(path, lenient=lenient).records():
        if stop is not None and event.step >= stop:
            continue  # nothing this engine adds from here on is live in the window
        mine = live.setdefault(engine, {})
        if isinstance(event, RequestAdded):
            mine[event.request_id] = event.seq
            if event.step >= start:
                chosen.add((engine, event.seq))
        elif isinstance(event, StatusChanged) and event.new_status > _PREEMPTED:
            added = mine.pop(event.request_id, None)
            if added is not None and event.step >= start:
                chosen.add((engine, added))
        elif isinstance(event, StepStarted) and event.step >= start:
            chosen.update((engine, seq) for seq in mine.values())
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
    """
    path = os.fspath(source)
    wanted = frozenset(requests)
    if bool(wanted) == (steps is not None):
        raise ValueError("slice: give request ids or a step range (exactly one of them)")
    if os.path.abspath(path) == os.path.abspath(output):
        raise ValueError(f"slice: the output {output} would overwrite the input log")
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
    with open(output, "wb", buffering=1 << 20) as f:
        records = LogReader(path, lenient=lenient).records()
        for engine, event, src in slice_records(records, selected, num_selected):
            f.write(encode_line_with(event, {ENGINE_KEY: engine, SOURCE_SEQ_KEY: src}))
            count += 1
    return count
