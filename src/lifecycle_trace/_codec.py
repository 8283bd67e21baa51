"""Fast twins of ``minivllm.events.event_to_dict`` / ``event_from_dict``, one per event type.

The generic codec walks a field list per event; on a log of millions of
events that loop is the cost. These functions are generated once per event
type from the same attrs fields, build exactly the same dicts and events, and
hand anything unusual back to the generic codec so every error message stays
the engine's own.
"""

from __future__ import annotations

import types
from collections.abc import Callable, Mapping
from typing import Any

import attrs
import orjson

from minivllm.events import (
    EVENT_TYPES,
    SCHEMA_VERSION,
    Event,
    event_from_dict,
)
from minivllm.request import RequestStatus

__all__ = ["DECODERS", "decode", "encode_dict", "encode_line", "encode_line_with"]

_STATUS_NAMES = {s: s.name for s in RequestStatus}
_STATUS_BY_NAME = {s.name: s for s in RequestStatus}
_NL = orjson.OPT_APPEND_NEWLINE


def _list_to_tuple(value: Any) -> tuple[Any, ...]:
    if type(value) is not list:
        raise TypeError(value)
    return tuple(value)


def _dict_to_mapping(value: Any) -> Mapping[str, int]:
    if type(value) is not dict:
        raise TypeError(value)
    return types.MappingProxyType(value)


def _kind(annotation: Any) -> str:
    text = str(annotation)
    if "RequestStatus" in text:
        return "status"
    if text.startswith("Mapping"):
        return "mapping"
    if text.startswith("tuple"):
        return "tuple"
    return "plain"


def _generate(cls: type[Event]) -> tuple[Callable[[Event], dict[str, Any]], Callable[..., Any]]:
    fields = attrs.fields(cls)  # type: ignore[arg-type]
    out_exprs = {
        "status": "_names[e.{0}]",
        "mapping": "dict(e.{0})",
        "tuple": "list(e.{0})",
        "plain": "e.{0}",
    }
    in_exprs = {
        "status": "_by_name[d[{0!r}]]",
        "mapping": "_mapping(d[{0!r}])",
        "tuple": "_tuple(d[{0!r}])",
        "plain": "d[{0!r}]",
    }
    items = ", ".join(f"{f.name!r}: " + out_exprs[_kind(f.type)].format(f.name) for f in fields)
    args = ", ".join(in_exprs[_kind(f.type)].format(f.name) for f in fields)
    source = (
        f"def encode(e):\n"
        f"    return {{'type': {cls.tag!r}, 'v': {SCHEMA_VERSION}, {items}}}\n"
        f"def decode(d):\n"
        f"    if d.get('v') != {SCHEMA_VERSION}:\n"
        f"        return _generic(d)\n"
        f"    try:\n"
        f"        return _build({args})\n"
        f"    except (KeyError, TypeError, ValueError):\n"
        f"        return _generic(d)\n"
    )
    namespace: dict[str, Any] = {
        "_names": _STATUS_NAMES,
        "_by_name": _STATUS_BY_NAME,
        "_mapping": _dict_to_mapping,
        "_tuple": _list_to_tuple,
        "_build": cls._build,  # type: ignore[attr-defined]
        "_generic": event_from_dict,
    }
    exec(compile(source, f"<lifecycle_trace codec for {cls.__name__}>", "exec"), namespace)
    return namespace["encode"], namespace["decode"]


_ENCODERS: dict[type[Event], Callable[[Event], dict[str, Any]]] = {}
_DECODERS: dict[str, Callable[[dict[str, Any]], Event]] = {}
for _cls in EVENT_TYPES:
    _ENCODERS[_cls], _DECODERS[_cls.tag] = _generate(_cls)

DECODERS: Mapping[str, Callable[[dict[str, Any]], Event]] = types.MappingProxyType(_DECODERS)
"""The generated decoder of each event type, by tag (for loops that dispatch themselves)."""


def encode_dict(event: Event) -> dict[str, Any]:
    """The same dict as ``event_to_dict(event)``, built by a per-type generated function."""
    return _ENCODERS[type(event)](event)


def encode_line(event: Event) -> bytes:
    """One JSON Lines record (with its newline) for ``event``."""
    return orjson.dumps(_ENCODERS[type(event)](event), option=_NL)


def encode_line_with(event: Event, extra: Mapping[str, Any]) -> bytes:
    """One JSON Lines record for ``event`` with ``extra`` keys appended (readers ignore them)."""
    data = _ENCODERS[type(event)](event)
    data.update(extra)
    return orjson.dumps(data, option=_NL)


def decode(data: dict[str, Any]) -> Event:
    """The same event as ``event_from_dict(data)``; raises its ``EventDecodeError`` on bad input."""
    tag = data.get("type")
    decoder = _DECODERS.get(tag) if isinstance(tag, str) else None
    if decoder is None:
        return event_from_dict(data)  # raises, naming the unknown type
    return decoder(data)
