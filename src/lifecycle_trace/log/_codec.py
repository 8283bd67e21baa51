"""The one codec of the log: events to JSON Lines and back, with msgspec, a batch at a time.

A line is ``minivllm.events.event_to_dict(event)`` as JSON: the type tag
``type``, every field, and the schema version ``v`` last. msgspec's encoder
writes the events (a StatusChanged as its serialised record, statuses by
name) and its typed decoder of the tagged union reads them back, refusing a
wrong type by itself: a string or a float for an int, an unknown tag or
version. A line of a merged log also names its engine (``engine``), which a
second decoder reads when a chunk holds such lines.

Encoding and decoding a list of events in one call is several times cheaper
than one call per event: the sink encodes a step at a time, the reader
decodes a chunk of the file at a time.
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Iterable
from collections.abc import Mapping
from collections.abc import Sequence
from operator import attrgetter
from typing import Any

import msgspec

from minivllm.events import SCHEMA_VERSION
from minivllm.events import Event
from minivllm.events import SerialisedEvent
from minivllm.events import SerialisedStatusChanged
from minivllm.events import StatusChanged
from minivllm.events import encode_hook
from minivllm.events import event_to_dict
from minivllm.events import from_serialised
from minivllm.events import to_serialised

__all__ = [
    "ENGINE_KEY",
    "Envelope",
    "decode_envelopes",
    "decode_event",
    "decode_events",
    "decode_line",
    "encode_dict",
    "encode_line",
    "encode_line_with",
    "encode_lines",
    "encode_object_with",
    "encode_serialised_lines",
    "encode_with_members",
]

ENGINE_KEY = "engine"
"""The key naming a line's engine in a merged log."""

_ENCODER = msgspec.json.Encoder(enc_hook=encode_hook)
_DECODER = msgspec.json.Decoder(SerialisedEvent)
# What a chunk holds if a line in it may name its engine (a merged log): looked
# for in the bytes before paying for a second decoding.
_ENGINE_MEMBER = b'"%s":' % ENGINE_KEY.encode()
_version_of = attrgetter("v")


class Envelope(msgspec.Struct, frozen=True, gc=False):
    """What a line says besides its event: its engine, in a merged log."""

    engine: str | None = None


_ENVELOPE_DECODER = msgspec.json.Decoder(Envelope)


def _replace_each(objs: list[Any], kind: type, convert: Callable[[Any], Any]) -> list[Any]:
    """``objs`` with every object of type ``kind`` converted, in place.

    There are a few of them in a hundred: they are found with C loops
    (``list.count``, ``list.index``) rather than by looking at every object in Python.
    """
    types = list(map(type, objs))
    i = 0
    for _ in range(types.count(kind)):
        i = types.index(kind, i)
        objs[i] = convert(objs[i])
        i += 1
    return objs


def _serialisable(events: Iterable[Event]) -> list[Any]:
    return _replace_each(list(events), StatusChanged, to_serialised)


def encode_lines(events: Iterable[Event]) -> bytes:
    """JSON Lines for ``events``, one line each, in one call."""
    return _ENCODER.encode_lines(_serialisable(events))


def encode_serialised_lines(objs: Sequence[Any]) -> bytes:
    """JSON Lines for events already in their serialised form (``to_serialised``)."""
    return _ENCODER.encode_lines(objs)


def encode_line(event: Event) -> bytes:
    """One JSON Lines record (with its newline) for ``event``."""
    return encode_object_with(event, b"}\n")


def encode_object_with(event: Event, rest: bytes) -> bytes:
    """``event`` as a JSON object whose closing ``}`` is replaced by ``rest``."""
    obj = event if type(event) is not StatusChanged else to_serialised(event)
    return _ENCODER.encode(obj)[:-1] + rest


def encode_with_members(event: Event, members: Mapping[str, Any]) -> bytearray:
    """``event`` as a JSON object with the (non-empty) ``members`` appended, built in one buffer.

    Both are encoded into the same bytearray, the second one over the event's
    closing ``}``, whose place then takes a ``,``: no slice, no concatenation.
    """
    line = bytearray()
    _ENCODER.encode_into(event if type(event) is not StatusChanged else to_serialised(event), line)
    brace = len(line) - 1
    _ENCODER.encode_into(members, line, brace)
    line[brace] = 44  # ord(","): the members' opening "{" now follows the event's fields
    return line


def encode_line_with(event: Event, extra: Mapping[str, Any]) -> bytes:
    """One JSON Lines record for ``event`` with ``extra`` keys appended (readers ignore them)."""
    if not extra:
        return encode_line(event)
    return encode_object_with(event, b"," + _ENCODER.encode(extra)[1:] + b"\n")


def encode_dict(event: Event) -> dict[str, Any]:
    """The same dict as ``event_to_dict(event)``."""
    return event_to_dict(event)


def decode_event(line: bytes) -> Event:
    """One line's event; raises ``msgspec.ValidationError`` / ``DecodeError``.

    A status name that does not exist raises ``ValueError``.
    """
    return from_serialised(_DECODER.decode(line))


def decode_line(line: bytes) -> tuple[Event, Envelope]:
    """One line's event and envelope; raises as :func:`decode_event` does."""
    return decode_event(line), _ENVELOPE_DECODER.decode(line)


def decode_events(lines: bytes) -> list[Event]:
    """Every event of a run of whole JSON lines (blank lines skipped).

    Raises as :func:`decode_line` does, for the first bad line.
    """
    decoded: list[Any] = _DECODER.decode_lines(lines)
    if set(map(_version_of, decoded)) - {SCHEMA_VERSION}:  # a log of an older version
        return [from_serialised(obj) for obj in decoded]
    return _replace_each(decoded, SerialisedStatusChanged, SerialisedStatusChanged.to_event)


def decode_envelopes(lines: bytes) -> list[Envelope] | None:
    """Every line's envelope, in the order of :func:`decode_events`; None if no line has one."""
    if _ENGINE_MEMBER not in lines:
        return None
    envelopes: list[Envelope] = _ENVELOPE_DECODER.decode_lines(lines)
    return envelopes
