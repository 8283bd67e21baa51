"""The engine's lifecycle events: immutable, typed records of everything that happens.

Every event carries a header assigned by the bus (``seq``, gapless and strictly
increasing; ``step``, the engine step in which or before which it happened;
``ts_ns``, from the bus clock) and a payload. :func:`event_to_dict` and
:func:`event_from_dict` are the one serialised form (a type tag plus a schema
version); only classes in :data:`EVENT_TYPES` are ever built from a tag.
"""

from __future__ import annotations

import inspect
import types
from collections.abc import Callable, Mapping
from typing import Any, ClassVar, TypeVar, dataclass_transform

import attrs

from minivllm.request import RequestStatus

SCHEMA_VERSION = 1
"""Version of the serialised event form; bumped on any incompatible change."""


class Event:
    """Base of all events (a slot-free mixin, so ``isinstance(e, Event)`` works)."""

    __slots__ = ()
    tag: ClassVar[str]
    seq: int
    step: int
    ts_ns: int


_E = TypeVar("_E", bound=type[Event])
_HEADER = {"seq": "int", "step": "int", "ts_ns": "int"}


@dataclass_transform(frozen_default=True)
def _event(tag: str) -> Callable[[_E], _E]:
    """Turn a class of annotated fields into a frozen, slotted attrs event.

    attrs' frozen ``__init__`` sets each field through ``object.__setattr__``,
    about twice the cost of a plain slot store, and the engine builds one event
    per counter change. So each event is a frozen subclass of a private mutable
    twin holding the same slots: the bus builds the twin at mutable speed and
    retypes it (the layouts are identical), while users only ever see the
    frozen class.
    """

    def wrap(cls: _E) -> _E:
        annotations = {**_HEADER, **inspect.get_annotations(cls)}
        defaults = {k: cls.__dict__[k] for k in annotations if k in cls.__dict__}
        twin_ns: dict[str, Any] = {"__annotations__": annotations, "__module__": cls.__module__}
        twin_ns.update(defaults)
        twin = attrs.define(slots=True, eq=False, weakref_slot=False)(
            type(f"_{cls.__name__}Fields", (), twin_ns)
        )
        frozen_ns = {
            "__doc__": cls.__doc__,
            "__module__": cls.__module__,
            "__qualname__": cls.__qualname__,
            "tag": tag,
        }
        frozen = attrs.frozen(slots=True, weakref_slot=False)(
            type(cls.__name__, (twin, Event), frozen_ns)
        )

        # A generated positional signature: *args packing would cost a third more.
        args = ", ".join(annotations)
        source = (
            f"def build({args}):\n"
            f"    obj = twin({args})\n"
            "    obj.__class__ = frozen\n"
            "    return obj\n"
        )
        namespace: dict[str, Any] = {"twin": twin, "frozen": frozen}
        exec(source, namespace)
        frozen._build = staticmethod(namespace["build"])  # type: ignore[attr-defined]
        frozen._twin = twin  # type: ignore[attr-defined]
        return frozen  # type: ignore[return-value]

    return wrap


@_event("request_added")
class RequestAdded(Event):
    """A request entered the waiting queue (vLLM's QUEUED)."""

    request_id: str
    num_prompt_tokens: int
    max_tokens: int
    min_tokens: int
    stop_token_ids: tuple[int, ...]
    ignore_eos: bool


@_event("status_changed")
class StatusChanged(Event):
    """A request moved from one status to another; counters as they stand at that moment."""

    request_id: str
    old_status: RequestStatus
    new_status: RequestStatus
    num_computed_tokens: int
    num_tokens: int
    num_output_tokens: int
    stop_reason: int | str | None


@_event("counter_updated")
class CounterUpdated(Event):
    """One request counter changed, emitted at the exact place it changes.

    ``counter`` is one of ``num_computed_tokens`` (schedule-time advance, prefix
    cache hit at admission, reset on preemption), ``num_tokens`` (a sampled
    token appended; ``num_output_tokens`` is ``num_tokens - num_prompt_tokens``),
    ``num_cached_tokens`` and ``num_preemptions``.
    """

    request_id: str
    counter: str
    old: int
    new: int


@_event("step_started")
class StepStarted(Event):
    """An engine step begins."""

    num_running: int
    num_waiting: int


@_event("step_finished")
class StepFinished(Event):
    """An engine step ended: what it scheduled and what it left behind."""

    num_scheduled_tokens: Mapping[str, int]
    preempted_req_ids: tuple[str, ...]
    finished_req_ids: tuple[str, ...]
    num_running: int
    num_waiting: int
    num_free_blocks: int
    num_used_blocks: int


@_event("blocks_allocated")
class BlocksAllocated(Event):
    """KV blocks were given to a request: fresh ones, and prefix-cache hits it now shares."""

    request_id: str
    num_new_blocks: int
    num_cached_blocks: int


@_event("blocks_freed")
class BlocksFreed(Event):
    """A request released all its KV blocks (finish, abort or preemption)."""

    request_id: str
    num_blocks: int


@_event("engine_configured")
class EngineConfigured(Event):
    """The engine's limits, emitted once before anything else, so a log is self-describing."""

    engine_id: str
    max_num_seqs: int
    max_num_batched_tokens: int
    max_model_len: int
    block_size: int
    num_gpu_blocks: int
    enable_chunked_prefill: bool
    enable_prefix_caching: bool
    long_prefill_token_threshold: int


EVENT_TYPES: tuple[type[Event], ...] = (
    EngineConfigured,
    RequestAdded,
    StatusChanged,
    CounterUpdated,
    StepStarted,
    StepFinished,
    BlocksAllocated,
    BlocksFreed,
)
"""Every event type the engine emits, in a stable order."""

EVENT_TYPES_BY_TAG: Mapping[str, type[Event]] = types.MappingProxyType(
    {cls.tag: cls for cls in EVENT_TYPES}
)
"""The registry: the only classes :func:`event_from_dict` will build."""

COUNTERS = ("num_computed_tokens", "num_tokens", "num_cached_tokens", "num_preemptions")
"""The counter names a :class:`CounterUpdated` event may carry."""


def _status_out(value: RequestStatus) -> str:
    return value.name


def _status_in(value: Any) -> RequestStatus:
    try:
        return RequestStatus[value]
    except (KeyError, TypeError):
        raise ValueError(f"unknown request status {value!r}") from None


def _mapping_in(value: Any) -> Mapping[str, int]:
    if not isinstance(value, dict):
        raise ValueError(f"expected an object, got {value!r}")
    return types.MappingProxyType(value)


def _tuple_in(value: Any) -> tuple[Any, ...]:
    if not isinstance(value, list | tuple):
        raise ValueError(f"expected a list, got {value!r}")
    return tuple(value)


def _field_codecs(cls: type[Event]) -> tuple[tuple[str, ...], dict[str, Any], dict[str, Any]]:
    names = tuple(a.name for a in attrs.fields(cls))  # type: ignore[arg-type]
    encoders: dict[str, Any] = {}
    decoders: dict[str, Any] = {}
    for a in attrs.fields(cls):  # type: ignore[arg-type]
        kind = str(a.type)
        if "RequestStatus" in kind:
            encoders[a.name], decoders[a.name] = _status_out, _status_in
        elif kind.startswith("Mapping"):
            encoders[a.name], decoders[a.name] = dict, _mapping_in
        elif kind.startswith("tuple"):
            encoders[a.name], decoders[a.name] = list, _tuple_in
    return names, encoders, decoders


_CODECS = {cls: _field_codecs(cls) for cls in EVENT_TYPES}


def event_to_dict(event: Event) -> dict[str, Any]:
    """A plain, JSON-ready dict: ``type`` tag, schema version ``v``, then every field."""
    names, encoders, _ = _CODECS[type(event)]
    out: dict[str, Any] = {"type": event.tag, "v": SCHEMA_VERSION}
    for name in names:
        out[name] = getattr(event, name)
    for name, encode in encoders.items():
        out[name] = encode(out[name])
    return out


class EventDecodeError(ValueError):
    """A dict that is not a valid serialised event (unknown type, version or field)."""


def event_from_dict(data: Mapping[str, Any]) -> Event:
    """Rebuild a typed event from :func:`event_to_dict`'s form, refusing anything unknown."""
    tag = data.get("type")
    cls = EVENT_TYPES_BY_TAG.get(tag) if isinstance(tag, str) else None
    if cls is None:
        raise EventDecodeError(f"unknown event type {tag!r}; known: {sorted(EVENT_TYPES_BY_TAG)}")
    version = data.get("v")
    if version != SCHEMA_VERSION:
        raise EventDecodeError(
            f"unsupported schema version {version!r} for event type {tag!r} "
            f"(this library reads version {SCHEMA_VERSION})"
        )
    names, _, decoders = _CODECS[cls]
    values = []
    for name in names:
        if name not in data:
            raise EventDecodeError(f"event type {tag!r} is missing field {name!r}")
        value = data[name]
        decode = decoders.get(name)
        if decode is not None:
            try:
                value = decode(value)
            except ValueError as exc:
                raise EventDecodeError(f"event type {tag!r}, field {name!r}: {exc}") from None
        values.append(value)
    return cls._build(*values)  # type: ignore[attr-defined, no-any-return]
