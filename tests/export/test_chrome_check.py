"""The Chrome trace validator accepts the exporter's traces and rejects each kind of damage."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest

from lifecycle_trace.export.chrome import chrome_trace
from lifecycle_trace.testing.chrome_check import InvalidTraceError
from lifecycle_trace.testing.chrome_check import trace_problems
from lifecycle_trace.testing.chrome_check import validate_chrome_trace
from minivllm.events import Event

Trace = dict[str, Any]


def _first(trace: Trace, ph: str, name: str | None = None) -> dict[str, Any]:
    return next(
        e for e in trace["traceEvents"] if e["ph"] == ph and (name is None or e["name"] == name)
    )


def _overlap_next_slice(trace: Trace) -> None:
    running = _first(trace, "X", "RUNNING")
    waiting = next(e for e in trace["traceEvents"] if e["ph"] == "X" and e["tid"] == running["tid"])
    waiting["dur"] += 1.0  # now runs 1 µs into the RUNNING slice


def _long_slice_covers_two(trace: Trace) -> None:
    tid = _first(trace, "X", "PREEMPTED")["tid"]
    row = [e for e in trace["traceEvents"] if e["ph"] == "X" and e["tid"] == tid]
    row[0]["dur"] = row[-1]["ts"] + row[-1]["dur"] - row[0]["ts"]


def _steps_on_thread_0(trace: Trace) -> None:
    for e in trace["traceEvents"]:
        if e["tid"] == e["pid"] == 1:
            e["tid"] = 0  # the old layout: the engine's steps on thread 0


def _request_row_in_the_engine(trace: Trace) -> None:
    _first(trace, "X", "RUNNING")["pid"] = 1  # a request's thread id, seen in the engine too


def _counter_back_in_time(trace: Trace) -> None:
    kv = [e for e in trace["traceEvents"] if e["ph"] == "C" and e["name"] == "kv_cache"]
    kv[-1]["ts"] = kv[0]["ts"] - 1


def _unknown_phase(trace: Trace) -> None:
    _first(trace, "X")["ph"] = "Q"


def _x_without_dur(trace: Trace) -> None:
    del _first(trace, "X")["dur"]


def _negative_dur(trace: Trace) -> None:
    _first(trace, "X")["dur"] = -3


def _string_ts(trace: Trace) -> None:
    _first(trace, "i")["ts"] = "12"


def _bad_instant_scope(trace: Trace) -> None:
    _first(trace, "i")["s"] = "x"


def _counter_text_value(trace: Trace) -> None:
    _first(trace, "C")["args"] = {"blocks_in_use": "five"}


def _metadata_without_name(trace: Trace) -> None:
    _first(trace, "M", "thread_name")["args"] = {}


def _tid_not_int(trace: Trace) -> None:
    _first(trace, "X")["tid"] = "r0"


def _end_without_begin(trace: Trace) -> None:
    trace["traceEvents"].append({"ph": "E", "name": "x", "pid": 1, "tid": 99, "ts": 5})


def _begin_never_ended(trace: Trace) -> None:
    trace["traceEvents"].append({"ph": "B", "name": "x", "pid": 1, "tid": 99, "ts": 5})


def _begin_end_overlaps_a_slice(trace: Trace) -> None:
    x = _first(trace, "X")
    trace["traceEvents"] += [
        {"ph": "B", "name": "b", "pid": x["pid"], "tid": x["tid"], "ts": x["ts"] + x["dur"] / 2},
        {"ph": "E", "name": "b", "pid": x["pid"], "tid": x["tid"], "ts": x["ts"] + x["dur"] * 2},
    ]


DAMAGE: dict[str, tuple[Callable[[Trace], None], str]] = {
    "overlap": (_overlap_next_slice, "slice overlaps"),
    "covering slice": (_long_slice_covers_two, "slice overlaps"),
    "counter order": (_counter_back_in_time, "goes back in time"),
    "phase": (_unknown_phase, "unknown or missing phase"),
    "X dur missing": (_x_without_dur, "'dur' must be"),
    "X dur negative": (_negative_dur, "'dur' must be"),
    "ts type": (_string_ts, "'ts' must be"),
    "instant scope": (_bad_instant_scope, "scope 's'"),
    "counter value": (_counter_text_value, "must be a number"),
    "metadata args": (_metadata_without_name, "args must hold 'name'"),
    "tid type": (_tid_not_int, "'tid' must be an integer"),
    "E alone": (_end_without_begin, "without a matching B"),
    "B alone": (_begin_never_ended, "never ended"),
    "B/E overlap": (_begin_end_overlaps_a_slice, "slice overlaps"),
    "tid 0": (_steps_on_thread_0, "tid 0"),
    "tid in two processes": (_request_row_in_the_engine, "is also in pid"),
}


def test_the_exporters_trace_is_valid(demo_events: list[Event]) -> None:
    assert trace_problems(chrome_trace(demo_events)) == []


@pytest.mark.parametrize("kind", sorted(DAMAGE))
def test_damage_is_rejected_with_its_reason(demo_events: list[Event], kind: str) -> None:
    damage, reason = DAMAGE[kind]
    trace = copy.deepcopy(chrome_trace(demo_events))
    damage(trace)
    with pytest.raises(InvalidTraceError) as info:
        validate_chrome_trace(trace)
    assert any(reason in p.message for p in info.value.problems), info.value.problems
    assert reason in str(info.value)


@pytest.mark.parametrize(
    ("trace", "reason"),
    [
        ("not a trace", "expected a list or an object"),
        ({"events": []}, "without a 'traceEvents' list"),
        ([42], "not an object"),
    ],
)
def test_bad_containers_are_rejected(trace: Any, reason: str) -> None:
    problems = trace_problems(trace)
    assert len(problems) == 1 and reason in problems[0].message


def test_touching_slices_and_the_list_form_are_valid() -> None:
    row = {"pid": 1, "tid": 1, "name": "s"}
    trace = [
        {**row, "ph": "X", "ts": 0, "dur": 2.5},
        {**row, "ph": "X", "ts": 2.5, "dur": 1},
        {**row, "ph": "B", "ts": 3.5},
        {**row, "ph": "E", "ts": 4},
        {**row, "ph": "C", "ts": 4, "args": {"v": 1}},
        {**row, "ph": "C", "ts": 4, "args": {"v": 2}},
    ]
    assert trace_problems(trace) == []
