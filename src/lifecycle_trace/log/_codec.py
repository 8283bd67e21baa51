"""The one codec of the log: events to JSON Lines and back, with msgspec, a batch at a time.

A line is ``minivllm.events.event_to_dict(event)`` as JSON: the type tag
``type``, every field, and the schema version ``v`` (written last). msgspec's
encoder writes the events (a StatusChanged as its serialised record, statuses
by name) and its typed decoder of the tagged union reads them back, refusing a
wrong type by itself: a string or a float for an int, an unknown tag. A line's
*envelope* (``v``, and ``engine`` in a merged log) is read by a second
decoder that skips everything else.

Encoding and decoding a list of events in one call is several times cheaper
than one call per event: the sink encodes a step at a time, the reader
decodes a chunk of the file at a time.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal

import msgspec

from minivllm.events import (
    SCHEMA_VERSION,
    Event,
    SerialisedEvent,
    StatusChanged,
    encode_hook,
    event_to_dict,
    from_serialised,
    to_serialised,
)

__all__ = [
    "ENGINE_KEY",
    "Envelope",
    "decode_envelopes",
    "decode_events",
    "decode_line",
    "encode_dict",
    "encode_line",
    "encode_line_with",
    "encode_lines",
    "encode_object",
    "encode_object_with",
    "encode_serialised_lines",
]

ENGINE_KEY = "engine"
"""The key naming a line's engine in a merged log."""

_ENCODER = msgspec.json.Encoder(enc_hook=encode_hook)
_DECODER = msgspec.json.Decoder(SerialisedEvent)
# The version goes last in each line: a line ends in "}\n" and a raw newline
# never occurs inside a JSON line (msgspec escapes it in strings), so this
# replacement touches exactly the line ends.
_LINE_END = b"}\n"
_VERSIONED_LINE_END = b',"v":%d}\n' % SCHEMA_VERSION


class Envelope(msgspec.Struct, frozen=True, gc=False):
    """What a line says about itself: its schema version, and its engine in a merged log."""

    v: Literal[1, 2]
    engine: str | None = None


_ENVELOPE_DECODER = msgspec.json.Decoder(Envelope)


def _serialisable(events: Iterable[Event]) -> list[Any]:
    return [e if type(e) is not StatusChanged else to_serialised(e) for e in events]


def encode_lines(events: Iterable[Event]) -> bytes:
    """JSON Lines for ``events``, one line each, in one call."""
    return encode_serialised_lines(_serialisable(events))


def encode_serialised_lines(objs: Sequence[Any]) -> bytes:
    """JSON Lines for events already in their serialised form (``to_serialised``)."""
    return _ENCODER.encode_lines(objs).replace(_LINE_END, _VERSIONED_LINE_END)


def encode_line(event: Event) -> bytes:
    """One JSON Lines record (with its newline) for ``event``."""
    return encode_lines((event,))


def encode_line_with(event: Event, extra: Mapping[str, Any]) -> bytes:
    """One JSON Lines record for ``event`` with ``extra`` keys appended (readers ignore them)."""
    tail = _ENCODER.encode(extra)  # b'{"engine":"a",...}'
    line = encode_line(event)
    return line[:-2] + b"," + tail[1:] + b"\n" if len(tail) > 2 else line


def encode_object(event: Event) -> bytes:
    """``event`` as one JSON object (a line without its newline)."""
    return encode_object_with(event, b"}")


def encode_object_with(event: Event, rest: bytes) -> bytes:
    """``event`` as one JSON object followed by ``rest``: the members of another, and its ``}``."""
    obj = event if type(event) is not StatusChanged else to_serialised(event)
    return _ENCODER.encode(obj)[:-1] + _VERSION_MEMBER + rest


_VERSION_MEMBER = b',"v":%d' % SCHEMA_VERSION


def encode_dict(event: Event) -> dict[str, Any]:
    """The same dict as ``event_to_dict(event)``."""
    return event_to_dict(event)


def decode_line(line: bytes) -> tuple[Event, Envelope]:
    """One line's event and envelope; raises ``msgspec.ValidationError`` / ``DecodeError``.

    A status name that does not exist raises ``ValueError``.
    """
    return from_serialised(_DECODER.decode(line)), _ENVELOPE_DECODER.decode(line)


def decode_events(lines: bytes) -> list[Event]:
    """Every event of a run of whole JSON lines (blank lines skipped), without envelopes."""
    return [from_serialised(obj) for obj in _DECODER.decode_lines(lines)]


def decode_envelopes(lines: bytes) -> list[Envelope]:
    """Every line's envelope, in the order of :func:`decode_events`."""
    return _ENVELOPE_DECODER.decode_lines(lines)


def decode_batch(lines: bytes) -> tuple[Sequence[Event | Any], list[Envelope]]:
    """Events (StatusChanged still as records: see ``from_serialised``) and envelopes."""
    return _DECODER.decode_lines(lines), _ENVELOPE_DECODER.decode_lines(lines)
