"""The event log: an append-only, gap-checked list of engine events, and the recorder that fills it.

Everything else in :mod:`lifecycle_trace` is a fold over this log. The log
refuses any event whose sequence number is not exactly one more than the last
one's, because a timeline rebuilt from a log with a hole in it would be quietly
wrong. Cost: one comparison and one list append per event; the events
themselves are the engine's own immutable objects, never copied.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from types import TracebackType
from typing import TYPE_CHECKING, Any, overload

from minivllm.events import Event

if TYPE_CHECKING:
    from minivllm.bus import EventBus, Subscription
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
    log is left unchanged. An ``EventLog`` is itself a bus handler.
    """

    __slots__ = ("_events", "_next_seq")

    def __init__(self, events: Iterable[Event] = ()) -> None:
        self._events: list[Event] = []
        self._next_seq: int | None = None
        self.extend(events)

    def append(self, event: Event) -> None:
        """Add one event; raise :class:`SequenceError` unless it is the next in sequence."""
        expected = self._next_seq
        seq = event.seq
        if expected is not None and seq != expected:
            raise SequenceError(expected, seq, event)
        self._next_seq = seq + 1
        self._events.append(event)

    __call__ = append

    def extend(self, events: Iterable[Event]) -> None:
        """Append events in order; stops at (and raises on) the first one out of sequence."""
        append = self.append
        for event in events:
            append(event)

    @property
    def first_seq(self) -> int | None:
        """Sequence number of the first event, or None while empty."""
        return self._events[0].seq if self._events else None

    @property
    def last_seq(self) -> int | None:
        """Sequence number of the last event, or None while empty."""
        return None if self._next_seq is None else self._next_seq - 1

    def __len__(self) -> int:
        return len(self._events)

    def __iter__(self) -> Iterator[Event]:
        return iter(self._events)

    @overload
    def __getitem__(self, index: int) -> Event: ...

    @overload
    def __getitem__(self, index: slice) -> list[Event]: ...

    def __getitem__(self, index: int | slice) -> Event | list[Event]:
        return self._events[index]

    def __repr__(self) -> str:
        return f"EventLog({len(self._events)} events, seq {self.first_seq}..{self.last_seq})"


class Recorder:
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
        self.subscription: Subscription = bus.subscribe(self.log.append)

    def stop(self) -> EventLog:
        """Stop recording (idempotent) and return the log."""
        self.subscription.unsubscribe()
        return self.log

    def __enter__(self) -> Recorder:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def record(source: LLMEngine | EventBus) -> Recorder:
    """Start recording every event of ``source`` (an engine or its bus) into a new log."""
    return Recorder(source)
