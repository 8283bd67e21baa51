"""Events packed into bytes: how an in-memory log keeps a finished step in about 45 bytes an event.

A packed batch is a pair: one byte per event naming its type (its index in
``EVENT_TYPES``), and the MessagePack array of every event's field values in
declaration order (``msgspec.structs.astuple``). No field names and no type
tags are stored, which is what makes it small, and both halves are built by C
loops (``map``, msgspec), which is what makes it cheap. Unpacking decodes the
array and rebuilds each event from its values, turning back into tuples and
statuses what MessagePack kept as arrays and numbers.
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Sequence
from typing import Any

import msgspec

from minivllm.events import EVENT_TYPES
from minivllm.events import SCHEMA_VERSION
from minivllm.events import Event
from minivllm.events import encode_hook
from minivllm.request import RequestStatus

__all__ = ["Packed", "pack", "unpack"]

Packed = tuple[bytes, bytes]
"""A packed batch: the type codes and the MessagePack array of field values."""

_CODE = {cls: code for code, cls in enumerate(EVENT_TYPES)}
_ENCODER = msgspec.msgpack.Encoder(enc_hook=encode_hook)
_DECODER = msgspec.msgpack.Decoder()
_astuple = msgspec.structs.astuple


def _builder(cls: type[Event]) -> Callable[[list[Any]], Event]:
    """Rebuild a ``cls`` from its field values as MessagePack gave them back."""
    fields = msgspec.structs.fields(cls)
    tuples = [i for i, f in enumerate(fields) if getattr(f.type, "__origin__", None) is tuple]
    statuses = [i for i, f in enumerate(fields) if f.type is RequestStatus]
    assert fields[-1].name == "v"  # the schema version, last and keyword-only

    def build(values: list[Any]) -> Event:
        v = values.pop()
        for i in tuples:
            values[i] = tuple(values[i])
        for i in statuses:
            values[i] = RequestStatus(values[i])
        return cls(*values) if v == SCHEMA_VERSION else cls(*values, v=v)

    return build


_BUILDERS = [_builder(cls) for cls in EVENT_TYPES]


def pack(events: Sequence[Event]) -> Packed:
    """The packed form of ``events``."""
    codes = bytes(map(_CODE.__getitem__, map(type, events)))
    return codes, _ENCODER.encode(list(map(_astuple, events)))


def unpack(packed: Packed) -> list[Event]:
    """The events of a packed batch, equal to the ones packed."""
    codes, data = packed
    rows = _DECODER.decode(data)
    return [_BUILDERS[code](values) for code, values in zip(codes, rows, strict=True)]
