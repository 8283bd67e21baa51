"""The engine's lifecycle events: immutable, typed records of everything that happens.

Every event is a frozen ``msgspec.Struct`` (no GC header: an event holds only
ints, strings and tuples, so it can never be part of a reference cycle). It
carries a header assigned by the bus (``seq``, gapless and strictly increasing;
``step``, the engine step in which or before which it happened; ``ts_ns``, from
the bus clock) and a payload. Build one positionally or by keyword:
``CounterUpdated(seq, step, ts_ns, request_id, counter, old, new)``.

The serialised form is a JSON object: the type tag ``type``, every field
(statuses by name) and the schema version ``v``, which every event carries as
its last field (a form without it is read as the current version).
:func:`event_to_dict` and :func:`event_from_dict` are its dict form;
``lifecycle_trace`` writes and reads the same objects as JSON Lines with
msgspec's encoder and typed decoder of :data:`SERIALISED_TYPES`. Only classes
in :data:`EVENT_TYPES` are ever built from a tag, and a value of the wrong type
(a string for an int, a float for an int) is refused.
"""

from __future__ import annotations

import types
from collections.abc import Mapping
from typing import Annotated
from typing import Any
from typing import ClassVar
from typing import Final
from typing import Literal
from typing import get_args

import msgspec

from minivllm.request import RequestStatus

SCHEMA_VERSION: Final = 2
"""Version of the serialised event form written today.

Version 2 added ``EngineConfigured.policy``, ``async_scheduling``,
``scheduler_reserve_full_isl`` and ``engine_name``, and ``RequestAdded.priority``,
``temperature``, ``top_p`` and ``n``. A version-1 line reads as the same event
with those fields at their defaults.
"""

SchemaVersion = Literal[1, 2]
"""The schema versions this library reads."""

Count = Annotated[int, msgspec.Meta(ge=0, le=(1 << 63) - 1)]
"""A sequence number, step, time, size, count or token id: a 64-bit integer of at least 0.

The bound is checked when a log is read (a line with a negative count, or one
too large for 64 bits, is damage), not when the engine builds an event.
"""

Int64 = Annotated[int, msgspec.Meta(ge=-(1 << 63), le=(1 << 63) - 1)]
"""A signed 64-bit integer (a priority, a block hash), checked when a log is read."""

READABLE_SCHEMA_VERSIONS: tuple[int, ...] = get_args(SchemaVersion)
"""The schema versions :func:`event_from_dict` and the log readers accept."""


class _Header(msgspec.Struct, frozen=True, gc=False, tag_field="type"):
    """The fields the bus assigns, first in every event and in its serialised record."""

    seq: Count
    step: Count
    ts_ns: Count


class Event(_Header, frozen=True, gc=False, kw_only=True):
    """Base of all events: the header every event carries.

    ``seq``, ``step`` and ``ts_ns`` come first; ``v``, the schema version of
    the event's serialised form, is keyword-only and comes last (msgspec
    writes it last in a line). Reading a version-1 line gives an event of the
    current version. ``tag`` is the event type's name in the serialised form
    (``"counter_updated"``).
    """

    tag: ClassVar[str]
    v: SchemaVersion = SCHEMA_VERSION


class RequestAdded(Event, frozen=True, gc=False, tag="request_added"):
    """A request entered the waiting queue (vLLM's QUEUED).

    ``priority``, ``temperature``, ``top_p`` and ``n`` are what the request
    asked for; their defaults are ``SamplingParams``' (priority 0, one sample).
    """

    request_id: str
    num_prompt_tokens: Count
    max_tokens: Count
    min_tokens: Count
    stop_token_ids: tuple[Count, ...]
    ignore_eos: bool
    priority: Int64 = 0
    temperature: float = 1.0
    top_p: float = 1.0
    n: Count = 1


class StatusChanged(Event, frozen=True, gc=False, tag="status_changed"):
    """A request moved from one status to another; counters as they stand at that moment.

    ``num_computed_tokens``, ``num_tokens`` and ``num_output_tokens`` are
    checksums: a fold of the earlier events gives the same values.
    """

    request_id: str
    old_status: RequestStatus
    new_status: RequestStatus
    num_computed_tokens: Count
    num_tokens: Count
    num_output_tokens: Count
    stop_reason: Count | str | None


class CounterUpdated(Event, frozen=True, gc=False, tag="counter_updated"):
    """One request counter changed, emitted at the exact place it changes.

    ``counter`` is one of :data:`COUNTERS`: ``num_computed_tokens`` (schedule-time
    advance, prefix cache hit at admission, reset on preemption), ``num_tokens``
    (a sampled token appended; ``num_output_tokens`` is ``num_tokens -
    num_prompt_tokens``), ``num_cached_tokens``, ``num_preemptions`` and
    ``num_output_placeholders`` (tokens scheduled but not yet sampled, with
    async scheduling). For ``num_tokens``, ``token_id`` is the token sampled
    (so the stop rules can be checked from the log); None for other counters.
    """

    request_id: str
    counter: str
    old: Count
    new: Count
    token_id: Count | None = None


class StepStarted(Event, frozen=True, gc=False, tag="step_started"):
    """An engine step begins."""

    num_running: Count
    num_waiting: Count


class StepFinished(Event, frozen=True, gc=False, tag="step_finished"):
    """An engine step ended: what it scheduled and what it left behind.

    Publishing one closes the step: the bus's ``step`` moves to the next one.
    """

    num_scheduled_tokens: Mapping[str, Count]
    preempted_req_ids: tuple[str, ...]
    finished_req_ids: tuple[str, ...]
    num_running: Count
    num_waiting: Count
    num_free_blocks: Count
    num_used_blocks: Count


class BlocksAllocated(Event, frozen=True, gc=False, tag="blocks_allocated"):
    """KV blocks were given to a request: fresh ones, and prefix-cache hits it now shares.

    ``block_ids`` are the fresh blocks and ``cached_block_ids`` the hits, in the
    order they join the request's block table; ``cached_block_hashes`` are the
    hashes the hits were found under.
    """

    request_id: str
    num_new_blocks: Count
    num_cached_blocks: Count
    block_ids: tuple[Count, ...] = ()
    cached_block_ids: tuple[Count, ...] = ()
    cached_block_hashes: tuple[Int64, ...] = ()


class BlocksFreed(Event, frozen=True, gc=False, tag="blocks_freed"):
    """A request released all its KV blocks (finish, abort or preemption).

    ``block_ids`` is its block table in order (the pool takes them back last first).
    """

    request_id: str
    num_blocks: Count
    block_ids: tuple[Count, ...] = ()


class BlocksCached(Event, frozen=True, gc=False, tag="blocks_cached"):
    """Full blocks of a request entered the prefix cache under these chained hashes."""

    request_id: str
    block_ids: tuple[Count, ...]
    block_hashes: tuple[Int64, ...]


class EngineConfigured(Event, frozen=True, gc=False, tag="engine_configured"):
    """The engine's limits, emitted once before anything else, so a log is self-describing.

    ``engine_name`` names the engine that produced the log (``"minivllm"``, or
    ``"vllm"`` for a log bridged from vLLM); ``engine_id`` tells engines of one
    run apart. (Not ``engine``: that key names a line's engine id in a merged
    log.) The defaults of the later fields are ``EngineConfig``'s.
    """

    engine_id: str
    max_num_seqs: Count
    max_num_batched_tokens: Count
    max_model_len: Count
    block_size: Count
    num_gpu_blocks: Count
    enable_chunked_prefill: bool
    enable_prefix_caching: bool
    long_prefill_token_threshold: Count
    policy: str = "fcfs"
    async_scheduling: bool = False
    scheduler_reserve_full_isl: bool = True
    engine_name: str = "minivllm"


EVENT_TYPES: tuple[type[Event], ...] = (
    EngineConfigured,
    RequestAdded,
    StatusChanged,
    CounterUpdated,
    StepStarted,
    StepFinished,
    BlocksAllocated,
    BlocksFreed,
    BlocksCached,
)
"""Every event type the engine emits, in a stable order."""

for _cls in EVENT_TYPES:
    _cls.tag = str(_cls.__struct_config__.tag)
del _cls

EVENT_TYPES_BY_TAG: Mapping[str, type[Event]] = types.MappingProxyType(
    {cls.tag: cls for cls in EVENT_TYPES}
)
"""The registry: the only classes :func:`event_from_dict` will build."""

COUNTERS = (
    "num_computed_tokens",
    "num_tokens",
    "num_cached_tokens",
    "num_preemptions",
    "num_output_placeholders",
)
"""The counter names a :class:`CounterUpdated` event may carry."""


# -- the serialised form ---------------------------------------------------------------
#
# msgspec writes an IntEnum as its number; the log names statuses (readable, and
# stable if the enum gains a member). So a StatusChanged crosses the codec as
# this record, whose statuses are names, and every other event as itself.


class SerialisedStatusChanged(_Header, frozen=True, gc=False, tag="status_changed"):
    """A :class:`StatusChanged` as written: the same fields, statuses by name."""

    request_id: str
    old_status: str
    new_status: str
    num_computed_tokens: Count
    num_tokens: Count
    num_output_tokens: Count
    stop_reason: Count | str | None
    v: SchemaVersion = SCHEMA_VERSION

    def to_event(self) -> StatusChanged:
        """The event of the current schema version, statuses looked up by name.

        An unknown status name raises ``ValueError``.
        """
        return StatusChanged(
            self.seq,
            self.step,
            self.ts_ns,
            self.request_id,
            _status(self.old_status, "old_status"),
            _status(self.new_status, "new_status"),
            self.num_computed_tokens,
            self.num_tokens,
            self.num_output_tokens,
            self.stop_reason,
        )

    @classmethod
    def from_event(cls, event: StatusChanged) -> SerialisedStatusChanged:
        """The record of ``event``."""
        return cls(
            event.seq,
            event.step,
            event.ts_ns,
            event.request_id,
            event.old_status.name,
            event.new_status.name,
            event.num_computed_tokens,
            event.num_tokens,
            event.num_output_tokens,
            event.stop_reason,
            v=event.v,
        )


def _status(name: str, field: str) -> RequestStatus:
    try:
        return RequestStatus[name]
    except KeyError:
        raise ValueError(f"field {field!r}: unknown request status {name!r}") from None


SERIALISED_TYPES = tuple(
    SerialisedStatusChanged if cls is StatusChanged else cls for cls in EVENT_TYPES
)
"""The tagged union a serialised event decodes to (then :func:`from_serialised`)."""

SerialisedEvent = (
    EngineConfigured
    | RequestAdded
    | SerialisedStatusChanged
    | CounterUpdated
    | StepStarted
    | StepFinished
    | BlocksAllocated
    | BlocksFreed
    | BlocksCached
)
"""The same union as one type, for msgspec's typed decoders."""


def to_serialised(event: Event) -> Event | SerialisedStatusChanged:
    """What msgspec encodes for ``event``: the event itself, a StatusChanged as its record."""
    if type(event) is StatusChanged:
        return SerialisedStatusChanged.from_event(event)
    return event


def from_serialised(obj: Event | SerialisedStatusChanged) -> Event:
    """The event a decoded object stands for, of the current schema version.

    Raises ``ValueError`` for an unknown status name.
    """
    if isinstance(obj, SerialisedStatusChanged):
        return obj.to_event()
    if obj.v != SCHEMA_VERSION:
        return msgspec.structs.replace(obj, v=SCHEMA_VERSION)
    return obj


def encode_hook(obj: Any) -> Any:
    """msgspec ``enc_hook``: a read-only mapping (as in ``StepFinished``) as a dict."""
    if isinstance(obj, types.MappingProxyType):
        return dict(obj)
    raise NotImplementedError(f"cannot serialise {type(obj).__name__}")


def event_to_dict(event: Event) -> dict[str, Any]:
    """A plain, JSON-ready dict: the ``type`` tag, every field, the schema version ``v`` last."""
    # Through JSON and back, so the dict is exactly what a log line holds (lists, not tuples).
    data: dict[str, Any] = msgspec.json.decode(
        msgspec.json.encode(to_serialised(event), enc_hook=encode_hook)
    )
    return data


class EventDecodeError(ValueError):
    """A dict that is not a valid serialised event (unknown type, version or field)."""


def event_from_dict(data: Mapping[str, Any]) -> Event:
    """Rebuild a typed event from :func:`event_to_dict`'s form, refusing anything unknown."""
    tag = data.get("type")
    if not isinstance(tag, str) or tag not in EVENT_TYPES_BY_TAG:
        raise EventDecodeError(f"unknown event type {tag!r}; known: {sorted(EVENT_TYPES_BY_TAG)}")
    version = data.get("v", SCHEMA_VERSION)
    if version not in READABLE_SCHEMA_VERSIONS or type(version) is not int:
        raise EventDecodeError(
            f"unsupported schema version {version!r} for event type {tag!r} "
            f"(this library reads versions {', '.join(map(str, READABLE_SCHEMA_VERSIONS))})"
        )
    try:
        return from_serialised(msgspec.convert(data, SerialisedEvent))
    except (msgspec.ValidationError, ValueError) as exc:
        raise EventDecodeError(f"event type {tag!r}: {exc}") from None
