"""The JSON Lines codec writes exactly the dict form, a batch at a time, and reads it back."""

from __future__ import annotations

import json
from typing import Any

import msgspec
import pytest
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

from helpers.trace import reference
from helpers.trace import run_logged
from helpers.trace import workloads
from lifecycle_trace.log import _codec
from minivllm.events import SCHEMA_VERSION
from minivllm.events import Event
from minivllm.events import EventDecodeError
from minivllm.events import event_from_dict
from minivllm.events import event_to_dict
from minivllm.workload import Workload

ALL_EVENTS = list(run_logged(reference("d"))[0])


@settings(max_examples=20, deadline=None)
@given(workloads())
def test_lines_are_the_dict_form_and_read_back_equal(workload: Workload) -> None:
    log, _ = run_logged(workload)
    events = list(log)
    blob = _codec.encode_lines(events)
    lines = blob.splitlines()
    assert len(lines) == len(events)
    for line, event in zip(lines, events, strict=True):
        assert json.loads(line) == event_to_dict(event)
        assert _codec.encode_line(event) == line + b"\n"
        decoded, envelope = _codec.decode_line(line)
        assert decoded == event and type(decoded) is type(event)
        assert decoded.v == SCHEMA_VERSION and envelope.engine is None
    assert _codec.decode_events(blob) == events


def test_extra_keys_are_appended_and_ignored_on_reading() -> None:
    event = ALL_EVENTS[3]
    line = _codec.encode_line_with(event, {"engine": "a", "src_seq": 9})
    assert json.loads(line) == {**event_to_dict(event), "engine": "a", "src_seq": 9}
    decoded, envelope = _codec.decode_line(line)
    assert decoded == event and envelope.engine == "a"
    assert _codec.encode_line_with(event, {}) == _codec.encode_line(event)


def _outcome(fn: Any, data: dict[str, Any]) -> str:
    try:
        fn(data)
    except (EventDecodeError, msgspec.ValidationError, ValueError):
        return "error"
    return "ok"


def _decode_json(data: dict[str, Any]) -> Event:
    event, _ = _codec.decode_line(json.dumps(data).encode())
    return event


@settings(max_examples=200, deadline=None)
@given(
    st.sampled_from(ALL_EVENTS),
    st.data(),
    st.one_of(
        st.none(),
        st.integers(),
        st.floats(allow_nan=False),
        st.text(max_size=3),
        st.lists(st.integers(), max_size=2),
        st.dictionaries(st.text(max_size=2), st.integers(), max_size=2),
        st.sampled_from(["RUNNING", "NOPE", "counter_updated"]),
    ),
)
def test_damaged_lines_fail_exactly_when_the_dict_form_fails(
    event: Event, data: st.DataObject, value: Any
) -> None:
    record = event_to_dict(event)
    key = data.draw(st.sampled_from(sorted(record)))
    if data.draw(st.booleans()):
        del record[key]
    else:
        record[key] = value
    assert _outcome(_decode_json, record) == _outcome(event_from_dict, record)


def test_unknown_type_is_refused() -> None:
    with pytest.raises(msgspec.ValidationError, match="Invalid value 'x'"):
        _codec.decode_line(b'{"type": "x", "v": 2}')


def test_an_older_version_reads_as_the_current_one_and_a_newer_is_refused() -> None:
    event = ALL_EVENTS[3]
    old = _codec.encode_line(event).replace(b'"v":2}', b'"v":1}')
    assert _codec.decode_events(old) == [event] and _codec.decode_events(old)[0].v == 2
    with pytest.raises(msgspec.ValidationError, match=r"Invalid enum value 3 - at `\$\[0\].v`"):
        _codec.decode_events(old.replace(b'"v":1}', b'"v":3}'))
