"""Generated codecs build exactly what the generic codec builds, and fail the same way."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from helpers.trace import reference, run_logged, workloads
from lifecycle_trace import _codec
from minivllm.events import EventDecodeError, event_from_dict, event_to_dict
from minivllm.workload import Workload

ALL_EVENTS = list(run_logged(reference("d"))[0])


@settings(max_examples=20, deadline=None)
@given(workloads())
def test_encode_and_decode_match_the_generic_codec(workload: Workload) -> None:
    log, _ = run_logged(workload)
    for event in log:
        data = _codec.encode_dict(event)
        assert data == event_to_dict(event)
        assert list(data) == list(event_to_dict(event))  # same key order, same bytes
        assert _codec.decode(data) == event_from_dict(data) == event


def _outcome(fn: Any, data: dict[str, Any]) -> tuple[str, Any]:
    try:
        return ("ok", fn(data))
    except EventDecodeError as exc:
        return ("error", str(exc))


@settings(max_examples=200, deadline=None)
@given(
    st.sampled_from(ALL_EVENTS),
    st.data(),
    st.one_of(
        st.none(),
        st.integers(),
        st.text(max_size=3),
        st.lists(st.integers(), max_size=2),
        st.dictionaries(st.text(max_size=2), st.integers(), max_size=2),
        st.sampled_from(["RUNNING", "NOPE", "counter_updated"]),
    ),
)
def test_damaged_dicts_fail_exactly_like_the_generic_codec(
    event: Any, data: st.DataObject, value: Any
) -> None:
    record = event_to_dict(event)
    key = data.draw(st.sampled_from(sorted(record)))
    if data.draw(st.booleans()):
        del record[key]
    else:
        record[key] = value
    assert _outcome(_codec.decode, record) == _outcome(event_from_dict, record)


def test_unknown_type_is_the_generic_error() -> None:
    with pytest.raises(EventDecodeError, match="unknown event type 'x'"):
        _codec.decode({"type": "x", "v": 1})
