"""One serialised form for every event, and nothing built from an unknown name or a wrong type."""

from __future__ import annotations

import gc
import json
import typing
from pathlib import Path
from types import MappingProxyType
from typing import Any

import attrs
import msgspec
import pytest

from minivllm import RequestStatus
from minivllm.config import EngineConfig
from minivllm.events import EVENT_TYPES
from minivllm.events import SCHEMA_VERSION
from minivllm.events import BlocksCached
from minivllm.events import CounterUpdated
from minivllm.events import EngineConfigured
from minivllm.events import Event
from minivllm.events import EventDecodeError
from minivllm.events import RequestAdded
from minivllm.events import StatusChanged
from minivllm.events import StepFinished
from minivllm.events import event_from_dict
from minivllm.events import event_to_dict
from minivllm.sampling_params import SamplingParams

V1_LOG = Path(__file__).parent.parent / "data" / "event_logs" / "schema_v1.jsonl"


def sample(cls: type[Event]) -> Event:
    values: dict[str, Any] = {
        "str": "x",
        "int": 3,
        "bool": True,
        "float": 0.5,
        "tuple[int, ...]": (1, 2),
        "tuple[str, ...]": ("a", "b"),
        "RequestStatus": RequestStatus.RUNNING,
        "int | str | None": 9,
        "Union[int, str, NoneType]": 9,  # the same, once a bound is declared on the int
        "int | None": 4,
        "Optional[int]": 4,
        "Mapping[str, int]": MappingProxyType({"a": 2}),
        "Literal[1, 2]": SCHEMA_VERSION,
    }
    hints = typing.get_type_hints(cls)
    fields = {name: values[_type_name(hints[name])] for name in cls.__struct_fields__}
    return cls(**fields)


def _type_name(hint: Any) -> str:
    text = str(hint).replace("typing.", "").replace("collections.abc.", "")
    if isinstance(hint, type):
        return hint.__name__
    return text.replace("minivllm.request.", "")


@pytest.mark.parametrize("cls", EVENT_TYPES, ids=lambda c: c.__name__)
def test_every_event_round_trips_through_json(cls: type[Event]) -> None:
    event = sample(cls)
    data = json.loads(json.dumps(event_to_dict(event)))
    assert data["type"] == cls.tag and data["v"] == SCHEMA_VERSION
    back = event_from_dict(data)
    assert back == event and type(back) is cls


def test_events_are_frozen_untracked_structs_with_the_header_first() -> None:
    event = CounterUpdated(0, 0, 0, "r", "num_tokens", 1, 2)
    assert isinstance(event, Event) and isinstance(event, msgspec.Struct)
    assert not hasattr(event, "__dict__") and not gc.is_tracked(event)
    with pytest.raises(AttributeError):
        event.new = 5  # type: ignore[misc]
    assert event == CounterUpdated(
        seq=0, step=0, ts_ns=0, request_id="r", counter="num_tokens", old=1, new=2
    )
    for cls in EVENT_TYPES:
        assert cls.__struct_fields__[:3] == ("seq", "step", "ts_ns")
        assert cls.__struct_fields__[-1] == "v" and event.v == SCHEMA_VERSION
        assert cls.__struct_config__.frozen and not cls.__struct_config__.gc


def test_statuses_are_written_by_name() -> None:
    data = event_to_dict(sample(StatusChanged))
    assert data["old_status"] == data["new_status"] == "RUNNING"


def test_unknown_type_and_version_are_refused() -> None:
    good = event_to_dict(sample(StepFinished))
    with pytest.raises(EventDecodeError, match=r"unknown event type 'os\.system'"):
        event_from_dict({**good, "type": "os.system"})
    with pytest.raises(EventDecodeError, match="unsupported schema version 99"):
        event_from_dict({**good, "v": 99})
    with pytest.raises(EventDecodeError, match="missing required field `num_free_blocks`"):
        event_from_dict({k: v for k, v in good.items() if k != "num_free_blocks"})


@pytest.mark.parametrize(
    ("value", "expected"),
    [("3", "got `str`"), (3.0, "got `float`"), (True, "got `bool`"), (None, "got `null`")],
)
def test_a_value_of_the_wrong_type_is_refused(value: object, expected: str) -> None:
    data = event_to_dict(sample(CounterUpdated))
    with pytest.raises(EventDecodeError, match=f"Expected `int`, {expected} - at `\\$.old`"):
        event_from_dict({**data, "old": value})


def test_bad_status_name_is_refused() -> None:
    data = event_to_dict(sample(StatusChanged))
    with pytest.raises(EventDecodeError, match="field 'new_status': unknown request status 'DONE'"):
        event_from_dict({**data, "new_status": "DONE"})


def test_new_fields_default_to_what_the_engine_and_sampling_params_default_to() -> None:
    params = SamplingParams()
    added = RequestAdded(0, 0, 0, "r", 3, 4, 0, (), False)
    assert (added.priority, added.n) == (0, 1)
    assert (added.temperature, added.top_p) == (params.temperature, params.top_p)
    configured = EngineConfigured(0, 0, 0, "e", 1, 2, 3, 4, 5, True, False, 0)
    default = attrs.fields(EngineConfig).scheduler_reserve_full_isl.default
    assert configured.scheduler_reserve_full_isl is default
    assert (configured.policy, configured.async_scheduling, configured.engine_name) == (
        "fcfs",
        False,
        "minivllm",
    )


def test_a_version_1_log_reads_with_the_new_fields_at_their_defaults() -> None:
    lines = [json.loads(line) for line in V1_LOG.read_text().splitlines()]
    assert {d["v"] for d in lines} == {1}
    events = [event_from_dict(d) for d in lines]
    # Every type of version 1 (BlocksCached came later).
    assert {type(e) for e in events} == set(EVENT_TYPES) - {BlocksCached}
    for data, event in zip(lines, events, strict=True):
        again = event_to_dict(event)
        # Every version-1 field reads back unchanged; only the new fields are added.
        assert {k: again[k] for k in data if k != "v"} == {
            k: v for k, v in data.items() if k != "v"
        }
        added = set(again) - set(data)
        assert added <= {
            "token_id",
            "block_ids",
            "cached_block_ids",
            "cached_block_hashes",
            "policy",
            "async_scheduling",
            "scheduler_reserve_full_isl",
            "engine_name",
            "priority",
            "temperature",
            "top_p",
            "n",
        }
    (configured,) = [e for e in events if isinstance(e, EngineConfigured)]
    assert configured.engine_name == "minivllm" and configured.policy == "fcfs"


def test_no_event_field_collides_with_a_key_the_log_adds_to_its_lines() -> None:
    # A merged log adds "engine", a slice "src_seq", structlog "event", "level", "timestamp".
    for cls in EVENT_TYPES:
        added = {"engine", "src_seq", "type", "event", "level", "timestamp"}
        assert not added & set(cls.__struct_fields__), cls


def test_a_form_without_a_version_reads_as_the_current_version() -> None:
    data = event_to_dict(sample(CounterUpdated))
    del data["v"]
    assert event_from_dict(data) == sample(CounterUpdated)
