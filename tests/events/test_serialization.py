"""One serialised form for every event, and nothing built from an unknown name."""

from __future__ import annotations

import json
from types import MappingProxyType

import attrs
import pytest

from minivllm import RequestStatus
from minivllm.events import (
    EVENT_TYPES,
    SCHEMA_VERSION,
    CounterUpdated,
    EventDecodeError,
    StatusChanged,
    StepFinished,
    event_from_dict,
    event_to_dict,
)


def sample(cls: type) -> object:
    values = {
        "str": "x",
        "int": 3,
        "bool": True,
        "tuple[int, ...]": (1, 2),
        "tuple[str, ...]": ("a", "b"),
        "RequestStatus": RequestStatus.RUNNING,
        "int | str | None": 9,
        "Mapping[str, int]": MappingProxyType({"a": 2}),
    }
    return cls._build(*(values[str(a.type)] for a in attrs.fields(cls)))  # type: ignore[attr-defined]


@pytest.mark.parametrize("cls", EVENT_TYPES, ids=lambda c: c.__name__)
def test_every_event_round_trips_through_json(cls: type) -> None:
    event = sample(cls)
    data = json.loads(json.dumps(event_to_dict(event)))  # type: ignore[arg-type]
    assert data["type"] == cls.tag and data["v"] == SCHEMA_VERSION
    back = event_from_dict(data)
    assert back == event and type(back) is cls


def test_events_are_frozen_slotted_attrs_classes() -> None:
    event = CounterUpdated._build(0, 0, 0, "r", "num_tokens", 1, 2)  # type: ignore[attr-defined]
    assert attrs.has(CounterUpdated) and not hasattr(event, "__dict__")
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        event.new = 5  # type: ignore[misc]
    assert event == CounterUpdated(
        seq=0, step=0, ts_ns=0, request_id="r", counter="num_tokens", old=1, new=2
    )


def test_unknown_type_and_version_are_refused() -> None:
    good = event_to_dict(sample(StepFinished))  # type: ignore[arg-type]
    with pytest.raises(EventDecodeError, match=r"unknown event type 'os\.system'"):
        event_from_dict({**good, "type": "os.system"})
    with pytest.raises(EventDecodeError, match="unsupported schema version 99"):
        event_from_dict({**good, "v": 99})
    with pytest.raises(EventDecodeError, match="missing field 'num_free_blocks'"):
        event_from_dict({k: v for k, v in good.items() if k != "num_free_blocks"})


def test_bad_status_name_is_refused() -> None:
    data = event_to_dict(sample(StatusChanged))  # type: ignore[arg-type]
    with pytest.raises(EventDecodeError, match="field 'new_status': unknown request status 'DONE'"):
        event_from_dict({**data, "new_status": "DONE"})
