"""The observer bus: typed events delivered synchronously, in order, to subscribers.

Cost model: the engine asks ``channel.handlers`` (a tuple) before it builds an
event, so an event type nobody listens to costs one attribute load and a truth
test. Subscribing replaces the tuple (copy on write), so a handler may
subscribe or unsubscribe anyone during delivery: the event being delivered
still reaches the handlers it started with.

An observer may route event types itself: if it has a ``handlers_for(event_types)``
method, the bus delivers each type to the callable the returned mapping names
for it, and types missing from the mapping not at all. A recorder uses this to
hand most events straight to a list's ``append``, a C call, and an observer
that needs a few types only says so.

A step's events are held back while the step runs (:meth:`EventBus.hold`)
and delivered, in order, once it is done (:meth:`EventBus.release`); a step
that fails is undone and its events are dropped unseen
(:meth:`EventBus.discard`), sequence numbers included. So an observer only
ever sees whole steps, and a log written by one never holds half of a step
that did not happen. An observer that keeps the step in progress apart
anyway (a recorder, a file sink) may say so with a ``discard_from(seq)``
method: it gets the events as they happen, which costs nothing extra, and
when a step is undone the bus calls ``discard_from`` with the step's first
sequence number, to forget the events from there on.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from collections.abc import Iterable
from importlib.metadata import entry_points
from typing import Any

import msgspec

from minivllm.context import EndsOnExit
from minivllm.events import EVENT_TYPES
from minivllm.events import CounterUpdated
from minivllm.events import Event
from minivllm.events import StepFinished

logger = logging.getLogger("minivllm.bus")

Handler = Callable[[Any], None]
"""A subscriber: any callable taking one event."""

_HEADER_SIZE = 3
"""``seq``, ``step`` and ``ts_ns``: the fields the bus assigns, first in every event."""

OBSERVER_ENTRY_POINT_GROUP = "minivllm.observers"
"""Entry-point group in which packages register observers by name."""


class Channel:
    """The handlers of one event type and its emitter.

    Emitters ask ``handlers`` (a tuple) before they gather a payload, and call
    ``emit(*payload)`` with the payload fields in declaration order: it builds
    the event with the next header, delivers it to every handler in order,
    and returns it. (By keyword: :meth:`EventBus.publish`.)
    """

    __slots__ = (
        "deliver",
        "emit",
        "event_type",
        "handlers",
        "held_deliver",
        "idle_deliver",
        "live_deliver",
    )

    def __init__(self, bus: EventBus, event_type: type[Event]) -> None:
        self.event_type = event_type
        self.handlers: tuple[Handler, ...] = ()
        # While a step runs: the delivery to the handlers that take events as they
        # happen (None if none do), and to the others, once the step is done.
        self.live_deliver: Handler | None = None
        self.held_deliver: Handler | None = None
        # One call that hands an event to every handler: the handler itself when
        # there is one (the usual case), else a loop. Replaced with ``handlers``.
        self.deliver: Handler = _delivery(bus, ())
        self.idle_deliver = self.deliver  # ``deliver`` between steps
        self.emit: Callable[..., Event] = _emitter(bus, self, event_type)


def _delivery(bus: EventBus, handlers: tuple[Handler, ...]) -> Handler:
    """A callable that delivers an event to ``handlers`` in order, each one's errors caught."""
    if len(handlers) == 1:
        return handlers[0]  # the emitter catches its errors

    def deliver_to_each(event: Event) -> None:
        for handler in handlers:
            try:
                handler(event)
            except Exception as exc:
                bus._handler_failed(handler, event, exc)

    return deliver_to_each


def _emitter(bus: EventBus, channel: Channel, event_type: type[Event]) -> Callable[..., Event]:
    """The ``emit`` of one channel: a closure, so the hot path reads no attribute it can avoid."""
    clock = bus.clock

    def emit(*payload: Any) -> Event:
        seq = bus._next_seq
        # A concatenated tuple is the cheapest way to pass a header plus a payload of
        # any length: a third cheaper than event_type(seq, step, ts, *payload).
        event = event_type(*((seq, bus.step, clock()) + payload))  # noqa: RUF005
        bus._next_seq = seq + 1
        deliver = channel.deliver
        try:
            deliver(event)
        except Exception as exc:
            bus._handler_failed(deliver, event, exc)
        return event

    if event_type is CounterUpdated:
        return _counter_emitter(bus, channel)
    if event_type is not StepFinished:
        return emit

    def emit_and_close_step(*payload: Any) -> Event:
        event = emit(*payload)
        bus.step = event.step + 1
        return event

    return emit_and_close_step


def _counter_emitter(bus: EventBus, channel: Channel) -> Callable[..., Event]:
    """``emit`` for ``CounterUpdated``: the same as any other, with the payload spelled out.

    Nearly every event of a run is a ``CounterUpdated`` (two per request per
    decode step), and naming its fields saves a quarter of the cost of
    an emission: no ``*payload`` tuple to pack and concatenate.
    """
    clock = bus.clock

    def emit_counter(
        request_id: str, counter: str, old: int, new: int, token_id: int | None = None
    ) -> Event:
        seq = bus._next_seq
        event = CounterUpdated(seq, bus.step, clock(), request_id, counter, old, new, token_id)
        bus._next_seq = seq + 1
        deliver = channel.deliver
        try:
            deliver(event)
        except Exception as exc:
            bus._handler_failed(deliver, event, exc)
        return event

    return emit_counter


class Subscription(EndsOnExit):
    """A live subscription; ``unsubscribe()`` or leave the ``with`` block to end it.

    ``routes`` maps each event type delivered to the callable that receives it
    (the handler itself, unless it routes types with ``handlers_for``).
    """

    __slots__ = ("_bus", "active", "discard_from", "event_types", "handler", "routes")

    def __init__(self, bus: EventBus, handler: Handler, routes: dict[type[Event], Handler]):
        self._bus = bus
        self.handler = handler
        self.routes = routes
        self.event_types = tuple(routes)
        self.active = True
        # Set if the handler keeps a step in progress apart itself (it may then
        # take a step's events as they happen).
        discard_from = getattr(handler, "discard_from", None)
        self.discard_from: Callable[[int], object] | None = (
            discard_from if callable(discard_from) else None
        )

    def unsubscribe(self) -> None:
        """Stop delivery to this handler (idempotent)."""
        if self.active:
            self.active = False
            self._bus._remove(self)

    def end_on_exit(self, exc: BaseException | None) -> None:
        """Leaving the ``with`` block unsubscribes."""
        self.unsubscribe()


def _handler_name(handler: Handler) -> str:
    name = getattr(handler, "__qualname__", None) or type(handler).__qualname__
    module = getattr(handler, "__module__", None) or type(handler).__module__
    return f"{module}.{name}"


def _routes(handler: Handler, event_types: tuple[type[Event], ...]) -> dict[type[Event], Handler]:
    """Which callable receives each event type: ``handler``, or what its ``handlers_for`` says."""
    route = getattr(handler, "handlers_for", None)
    if route is None:
        return dict.fromkeys(event_types, handler)
    routes = dict(route(event_types))
    for event_type, target in routes.items():
        if event_type not in event_types or not callable(target):
            raise TypeError(
                f"{_handler_name(handler)}.handlers_for() must map some of the event types "
                f"it was given to callables, got {event_type!r}: {target!r}"
            )
    return routes


class EventBus:
    """Assigns each event its header (sequence number, step, timestamp) and delivers it.

    ``clock`` returns integer nanoseconds (``time.monotonic_ns`` by default;
    pass a fake one for reproducible logs); it is fixed at construction.
    ``step`` is the step new events are stamped with; delivering or publishing
    a ``StepFinished`` moves it to the next step. A handler that raises is
    logged once (per handler) and counted in ``errors``; with
    ``raise_errors=True`` the exception propagates instead, for tests.
    """

    def __init__(
        self, clock: Callable[[], int] = time.monotonic_ns, raise_errors: bool = False
    ) -> None:
        self.clock = clock
        self.raise_errors = raise_errors
        self.step = 0
        self.errors: dict[str, int] = {}
        self._next_seq = 0
        self._channels: dict[type[Event], Channel] = {t: Channel(self, t) for t in EVENT_TYPES}
        self._subscriptions: list[Subscription] = []
        # While a step runs: the events held back, where the step started (seq, step),
        # the channels that hold, and (with raise_errors) the observers' errors.
        self._held: list[Event] | None = None
        self._held_at = (0, 0)
        self._holding: list[Channel] = []
        self._errors_seen: list[Exception] | None = None
        self._releasing = False

    @property
    def num_emitted(self) -> int:
        """How many events this bus has built and delivered (the next sequence number)."""
        return self._next_seq

    def channel(self, event_type: type[Event]) -> Channel:
        """The channel of ``event_type``, for emitters that check ``handlers`` first."""
        try:
            return self._channels[event_type]
        except KeyError:
            raise ValueError(f"unknown event type {event_type!r}") from None

    def subscribe(self, handler: Handler, *event_types: type[Event]) -> Subscription:
        """Deliver events of ``event_types`` (all types if none given) to ``handler``.

        If ``handler`` has a ``handlers_for(event_types)`` method, each type
        goes to the callable the mapping it returns names for that type, and
        a type it leaves out goes nowhere.
        """
        if not callable(handler):
            raise TypeError(f"handler must be callable, got {handler!r}")
        types_ = event_types or tuple(self._channels)
        for t in types_:
            self.channel(t)  # validates
        sub = Subscription(self, handler, _routes(handler, tuple(types_)))
        self._subscriptions.append(sub)
        for t in sub.routes:
            self._refresh(self._channels[t])
        return sub

    def _remove(self, sub: Subscription) -> None:
        self._subscriptions.remove(sub)
        for t in sub.routes:
            self._refresh(self._channels[t])

    def _refresh(self, channel: Channel) -> None:
        """Recompute a channel's handlers and deliveries from the subscriptions, in order."""
        t = channel.event_type
        routed = [
            (sub.routes[t], sub.discard_from is not None)
            for sub in self._subscriptions
            if t in sub.routes
        ]
        channel.handlers = tuple(target for target, _ in routed)
        live = tuple(target for target, takes_live in routed if takes_live)
        held = tuple(target for target, takes_live in routed if not takes_live)
        channel.live_deliver = _delivery(self, live) if live else None
        channel.held_deliver = _delivery(self, held) if held else None
        channel.deliver = channel.idle_deliver = _delivery(self, channel.handlers)
        if self._held is not None:
            self._hold(channel, self._held)

    # -- holding a step's events until it is done ---------------------------

    @property
    def holding(self) -> bool:
        """Whether events are being held back (a step is in progress)."""
        return self._held is not None

    def hold(self) -> None:
        """Hold back the events emitted from now on, until :meth:`release` or :meth:`discard`.

        Handlers that have ``discard_from`` still get them as they happen.
        """
        if self._held is not None:
            raise RuntimeError("the bus is already holding the events of a step")
        held: list[Event] = []
        self._held = held
        self._held_at = (self._next_seq, self.step)
        if not self._subscriptions:
            return  # no event will be built
        for channel in self._channels.values():
            if channel.held_deliver is not None:
                self._hold(channel, held)

    def _hold(self, channel: Channel, held: list[Event]) -> None:
        live = channel.live_deliver
        if channel.held_deliver is None:
            return
        self._holding.append(channel)
        if live is None:
            channel.deliver = held.append
            return
        hold = held.append

        def deliver_live_and_hold(event: Event) -> None:
            try:
                live(event)
            finally:
                hold(event)

        channel.deliver = deliver_live_and_hold

    def _stop_holding(self) -> list[Event]:
        held = self._held
        if held is None:
            raise RuntimeError("the bus is not holding any events")
        self._held = None
        if self._holding:
            for channel in self._holding:
                channel.deliver = channel.idle_deliver
            self._holding = []
        return held

    def discard(self) -> None:
        """Drop the held events unseen and take their sequence numbers and steps back.

        Handlers that took the events as they happened are told with
        ``discard_from(seq)``, ``seq`` the first sequence number dropped.
        """
        self._stop_holding()
        self._errors_seen = None
        seq, self.step = self._held_at
        if seq < self._next_seq:
            for sub in self._subscriptions:
                if sub.discard_from is not None:
                    sub.discard_from(seq)
        self._next_seq = seq

    def release(self) -> None:
        """Deliver the held events in order, each to the waiting handlers its channel has now.

        Every event is delivered even if a handler raises; with
        ``raise_errors`` the first such error is raised once all are delivered.
        """
        held = self._stop_holding()
        if held:
            channels = self._channels
            self._releasing = True
            try:
                for event in held:
                    deliver = channels[type(event)].held_deliver
                    if deliver is None:  # unsubscribed since
                        continue
                    try:
                        deliver(event)
                    except Exception as exc:
                        self._handler_failed(deliver, event, exc)
            finally:
                self._releasing = False
        errors = self._errors_seen
        if errors is not None:
            self._errors_seen = None
            raise errors[0]

    def has_subscribers(self, event_type: type[Event] | None = None) -> bool:
        """Whether anyone listens (to ``event_type``, or to anything)."""
        if event_type is None:
            return bool(self._subscriptions)
        return bool(self.channel(event_type).handlers)

    def emit(self, channel: Channel, *payload: Any) -> Event:
        """Build the event of ``channel`` with the next header and deliver it in order."""
        return channel.emit(*payload)

    def publish(self, event_type: type[Event], *payload: Any, **fields: Any) -> Event | None:
        """Emit an event of ``event_type`` if anyone listens; return it (or None).

        The payload is given positionally, by keyword, or both:
        ``bus.publish(CounterUpdated, request_id="r", counter="num_tokens", old=3, new=4)``.
        Publishing a ``StepFinished`` closes the step whether or not anyone
        listens: ``step`` moves on, so an emitter outside the engine never sets
        it by hand.
        """
        ch = self.channel(event_type)
        if not ch.handlers:
            if event_type is StepFinished:
                self.step += 1
            return None
        if fields:
            # The event type binds the keywords (and refuses wrong ones); its
            # payload, in order, then takes the one path that stamps, delivers
            # and closes a step: the channel's emitter.
            bound = event_type(0, 0, 0, *payload, **fields)
            payload = msgspec.structs.astuple(bound)[_HEADER_SIZE:-1]  # not ``v``
        return ch.emit(*payload)

    def _handler_failed(self, handler: Handler, event: Event, exc: Exception) -> None:
        if self.raise_errors:
            if self._held is not None or self._releasing:
                # Inside a step: deliver the rest first; step() raises it at the end.
                if self._errors_seen is None:
                    self._errors_seen = []
                self._errors_seen.append(exc)
                return
            raise exc
        # Name the subscribed observer, not the callable it routed this type to.
        owner = next(
            (s.handler for s in self._subscriptions if s.routes.get(type(event)) is handler),
            handler,
        )
        name = _handler_name(owner)
        count = self.errors.get(name, 0)
        self.errors[name] = count + 1
        if count == 0:
            logger.error(
                "observer %s raised on %s (seq %d); further errors from it are counted, not logged",
                name,
                type(event).__name__,
                event.seq,
                exc_info=exc,
            )


def load_observer(name: str) -> Handler:
    """Build the observer registered as ``name`` in the ``minivllm.observers`` entry points.

    The entry point names a zero-argument factory that returns a handler.
    """
    found = entry_points(group=OBSERVER_ENTRY_POINT_GROUP, name=name)
    for ep in found:
        factory = ep.load()
        return factory()  # type: ignore[no-any-return]
    known = sorted(ep.name for ep in entry_points(group=OBSERVER_ENTRY_POINT_GROUP))
    raise ValueError(f"unknown observer {name!r}; registered observers: {known}")


def resolve_observers(observers: Iterable[Handler | str]) -> list[Handler]:
    """Turn a mix of handlers and entry-point names into handlers."""
    return [load_observer(o) if isinstance(o, str) else o for o in observers]


def observer_streams(bus: EventBus) -> list[Any]:
    """The streams the bus's observers say they write to.

    An observer that writes lines somewhere (a JSON logger) names the streams
    in an ``output_streams()`` method; the engine's front end asks, so its
    progress bar never shares a stream with them.
    """
    streams: list[Any] = []
    for sub in bus._subscriptions:
        method = getattr(sub.handler, "output_streams", None)
        if callable(method):
            streams.extend(method())
    return streams
