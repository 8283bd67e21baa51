"""The event log: an append-only, gap-checked list of engine events, and the recorder that fills it.

Everything else in :mod:`lifecycle_trace` is a fold over this log. The log
refuses any event whose sequence number is not exactly one more than the last
one's, because a timeline rebuilt from a log with a hole in it would be quietly
wrong.

Cost: recording is one C call per event (a list append); at each step's end the
step is checked and packed into bytes, about 45 bytes an event
(:mod:`lifecycle_trace.log._packed`). Reading the log rebuilds equal events
from the packed steps, a step at a time.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable
from collections.abc import Iterator
from collections.abc import Mapping
from typing import TYPE_CHECKING
from typing import Any
from typing import overload

from lifecycle_trace.log._packed import Packed
from lifecycle_trace.log._packed import pack
from lifecycle_trace.log._packed import unpack
from minivllm.context import EndsOnExit
from minivllm.events import EVENT_TYPES
from minivllm.events import Event
from minivllm.events import StepFinished

if TYPE_CHECKING:
    from minivllm.bus import EventBus
    from minivllm.bus import Handler
    from minivllm.bus import Subscription
    from minivllm.engine.llm_engine import LLMEngine

__all__ = ["EventLog", "Recorder", "SequenceError", "record"]


class SequenceError(ValueError):
    """An event arrived out of sequence: a gap, a repeat, or a step back in ``seq``."""

    def __init__(self, expected: int, got: int, event: Event) -> None:
        self.expected = expected
        self.got = got
        self.event = event
        if got > expected:
            what = f"{got - expected} event(s) missing (seq {expected}..{got - 1})"
        else:
            what = "a repeated or out-of-order event"
        super().__init__(
            f"event log: expected seq {expected}, got seq {got} "
            f"({type(event).__name__} at step {event.step}): {what}"
        )


class EventLog:
    """Append-only list of events whose ``seq`` numbers increase by exactly one.

    The first event may have any ``seq`` (a log can start mid-run); every later
    one must follow without a gap, or :class:`SequenceError` is raised and the
    log keeps only what came before. An ``EventLog`` is itself a bus handler:
    subscribed to every event type it takes each event with one list append and
    checks the step's events when its ``StepFinished`` arrives (subscribed to
    fewer types, it checks each event as it comes, and fails at the first gap).

    The events of finished steps are kept packed; indexing and iterating
    rebuild them, so they come back equal to what was appended, not the same
    objects.
    """

    __slots__ = ("_batches", "_cache", "_checked", "_ends", "_first_seq", "_fresh", "_next_seq")

    def __init__(self, events: Iterable[Event] = ()) -> None:
        self._batches: list[Packed] = []
        self._ends: list[int] = []  # events in the batches up to and including each one
        self._fresh: list[Event] = []  # not packed yet; the first _checked of them checked
        self._checked = 0
        self._first_seq: int | None = None
        self._next_seq: int | None = None
        self._cache: tuple[int, list[Event]] = (-1, [])  # the last batch unpacked
        self.extend(events)

    def append(self, event: Event) -> None:
        """Add one event; raise :class:`SequenceError` unless it is the next in sequence."""
        self._settle()
        expected = self._next_seq
        seq = event.seq
        if expected is not None and seq != expected:
            raise SequenceError(expected, seq, event)
        self._fresh.append(event)
        self._checked += 1
        self._next_seq = seq + 1
        if self._first_seq is None:
            self._first_seq = seq
        if type(event) is StepFinished:
            self._pack()

    __call__ = append

    def extend(self, events: Iterable[Event]) -> None:
        """Append events in order; stops at (and raises on) the first one out of sequence."""
        append = self.append
        for event in events:
            append(event)

    def handlers_for(self, event_types: tuple[type[Event], ...]) -> Mapping[type[Event], Handler]:
        """The bus's routing: every event to one list append, the step's end to the check.

        Subscribed to fewer than every type, each event goes through :meth:`append`.
        """
        if set(event_types) != set(EVENT_TYPES):
            return dict.fromkeys(event_types, self.append)
        fast: dict[type[Event], Handler] = dict.fromkeys(event_types, self._fresh.append)
        fast[StepFinished] = self._end_step
        return fast

    def discard_from(self, seq: int) -> None:
        """Forget the events from ``seq`` on: the engine undid the step they belong to.

        The bus calls this when a step fails, so the log keeps only the steps
        that happened (and, having it, the log gets each event as it happens).
        """
        self._settle()
        if self._first_seq is None or self._next_seq is None or seq >= self._next_seq:
            return
        keep = max(seq - self._first_seq, 0)
        fresh = self._fresh  # the same list throughout: the bus holds its append
        while self._batches and self._num_packed() > keep:
            fresh[:0] = unpack(self._batches.pop())
            self._ends.pop()
            self._cache = (-1, [])
        del fresh[keep - self._num_packed() :]
        self._checked = len(fresh)
        if keep == 0:
            self._first_seq = self._next_seq = None
        else:
            self._next_seq = self._first_seq + keep

    def _end_step(self, event: StepFinished) -> None:
        self._fresh.append(event)
        self._settle()
        self._pack()

    def _settle(self) -> None:
        """Check the events appended without a check (by the bus, in sequence by construction)."""
        fresh, start = self._fresh, self._checked
        if start == len(fresh):
            return
        expected = self._next_seq if self._next_seq is not None else fresh[start].seq
        if fresh[start].seq != expected or fresh[-1].seq != expected + len(fresh) - 1 - start:
            for i in range(start, len(fresh)):
                if fresh[i].seq != expected + i - start:
                    bad = fresh[i]
                    del fresh[i:]
                    self._settled(expected + i - start)
                    raise SequenceError(expected + i - start, bad.seq, bad)
        self._settled(expected + len(fresh) - start)

    def _settled(self, next_seq: int) -> None:
        if self._first_seq is None and self._fresh:
            self._first_seq = self._fresh[0].seq
        self._checked = len(self._fresh)
        if self._fresh:
            self._next_seq = next_seq

    def _pack(self) -> None:
        if self._fresh:
            self._batches.append(pack(self._fresh))
            self._ends.append(self._num_packed() + len(self._fresh))
            self._fresh.clear()  # the same list: the bus holds its append
            self._checked = 0

    def _num_packed(self) -> int:
        return self._ends[-1] if self._ends else 0

    def _unpacked(self, k: int) -> list[Event]:
        if self._cache[0] != k:
            self._cache = (k, unpack(self._batches[k]))
        return self._cache[1]

    @property
    def first_seq(self) -> int | None:
        """Sequence number of the first event, or None while empty."""
        self._settle()
        return self._first_seq

    @property
    def last_seq(self) -> int | None:
        """Sequence number of the last event, or None while empty."""
        self._settle()
        return None if self._next_seq is None else self._next_seq - 1

    def __len__(self) -> int:
        self._settle()
        return self._num_packed() + len(self._fresh)

    def __iter__(self) -> Iterator[Event]:
        self._settle()
        for k in range(len(self._batches)):
            yield from self._unpacked(k) if self._cache[0] == k else unpack(self._batches[k])
        yield from self._fresh

    @overload
    def __getitem__(self, index: int) -> Event: ...

    @overload
    def __getitem__(self, index: slice) -> list[Event]: ...

    def __getitem__(self, index: int | slice) -> Event | list[Event]:
        size = len(self)
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(size))]
        i = index + size if index < 0 else index
        if not 0 <= i < size:
            raise IndexError("EventLog index out of range")
        packed = self._num_packed()
        if i >= packed:
            return self._fresh[i - packed]
        k = bisect.bisect_right(self._ends, i)
        return self._unpacked(k)[i - (self._ends[k - 1] if k else 0)]

    def __repr__(self) -> str:
        return f"EventLog({len(self)} events, seq {self.first_seq}..{self.last_seq})"


class Recorder(EndsOnExit):
    """Subscribes an :class:`EventLog` to every event type of an engine's bus.

    Use it as a context manager, or call :meth:`stop`. It must see every
    event type, since the log checks that no sequence number is skipped.
    """

    __slots__ = ("log", "subscription")

    def __init__(self, source: LLMEngine | EventBus, log: EventLog | None = None) -> None:
        bus: Any = getattr(source, "bus", source)  # an engine or its bus
        if not callable(getattr(bus, "subscribe", None)):
            raise TypeError(f"source must be an LLMEngine or an EventBus, got {source!r}")
        self.log = log if log is not None else EventLog()
        self.subscription: Subscription = bus.subscribe(self.log)

    def stop(self) -> EventLog:
        """Stop recording (idempotent) and return the log."""
        self.subscription.unsubscribe()
        return self.log

    def end_on_exit(self, exc: BaseException | None) -> None:
        """Leaving the ``with`` block stops recording."""
        self.stop()


def record(source: LLMEngine | EventBus) -> Recorder:
    """Start recording every event of ``source`` (an engine or its bus) into a new log."""
    return Recorder(source)
