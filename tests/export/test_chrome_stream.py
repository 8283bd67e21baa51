"""The streamed Chrome trace: the same trace as in memory, written as the log is read."""

from __future__ import annotations

import io
import json
from collections.abc import Iterable
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import settings

from helpers.export import run_scenario_logged
from lifecycle_trace.cli import main
from lifecycle_trace.eventlog import EventLog
from lifecycle_trace.export.chrome import ENGINE_TID
from lifecycle_trace.export.chrome import ChromeTraceStream
from lifecycle_trace.export.chrome import chrome_trace
from lifecycle_trace.export.chrome import write_chrome_trace
from lifecycle_trace.store import write_jsonl
from lifecycle_trace.testing import FakeClock
from lifecycle_trace.testing import Scenario
from lifecycle_trace.testing import scenarios
from lifecycle_trace.testing.chrome_check import validate_chrome_trace
from minivllm import LLMEngine
from minivllm import SamplingParams
from minivllm.events import Event
from minivllm.events import RequestAdded
from minivllm.events import StatusChanged
from minivllm.request import RequestStatus


class Counting:
    """An event stream that counts how many events its consumer has taken."""

    def __init__(self, events: Iterable[Event]) -> None:
        self.events = events
        self.taken = 0

    def __iter__(self) -> Iterator[Event]:
        for e in self.events:
            self.taken += 1
            yield e


def _streamed(events: list[Event]) -> dict[str, Any]:
    out = io.StringIO()
    n = write_chrome_trace(events, out)
    trace: dict[str, Any] = json.loads(out.getvalue())
    assert len(trace["traceEvents"]) == n
    return trace


@pytest.mark.parametrize("fraction", [1.0, 0.5, 0.2])
def test_the_written_trace_is_the_in_memory_one(
    demo_events: list[Event], fraction: float, tmp_path: Path
) -> None:
    events = demo_events[: int(len(demo_events) * fraction)]
    expected = chrome_trace(events)
    validate_chrome_trace(expected)
    assert _streamed(events) == expected
    path = tmp_path / "trace.json"
    write_chrome_trace(events, path)
    assert json.loads(path.read_text()) == expected


def test_the_export_command_writes_the_in_memory_trace(
    demo_events: list[Event], tmp_path: Path
) -> None:
    log, out = tmp_path / "demo.jsonl", tmp_path / "trace.json"
    write_jsonl(demo_events, log)
    assert main(["export", str(log), "--format", "chrome", "-o", str(out)]) == 0
    written = json.loads(out.read_text())
    validate_chrome_trace(written)
    assert written == chrome_trace(demo_events)


@settings(max_examples=25)
@given(scenarios())
def test_random_runs_stream_the_in_memory_trace(scenario: Scenario) -> None:
    events = run_scenario_logged(scenario)
    streamed = _streamed(events)
    validate_chrome_trace(streamed)
    assert streamed == chrome_trace(events)


def test_each_row_is_named_before_anything_is_drawn_on_it(demo_events: list[Event]) -> None:
    named: set[int] = set()
    drawn = 0
    for e in ChromeTraceStream(demo_events):
        if e["ph"] == "M" and e["name"] == "thread_name":
            named.add(e["tid"])
        elif e["ph"] in "Xi":
            assert e["tid"] in named
            drawn += 1
    added = [e for e in demo_events if isinstance(e, RequestAdded)]
    assert drawn and len(named) == 1 + len(added)


def test_a_request_is_written_out_as_soon_as_it_finishes(demo_events: list[Event]) -> None:
    finishing = {
        e.request_id: i + 1
        for i, e in enumerate(demo_events)
        if isinstance(e, StatusChanged) and RequestStatus.is_finished(e.new_status)
    }
    source = Counting(demo_events)
    rows: dict[int, str] = {}
    seen = set()
    for e in ChromeTraceStream(source):
        if e["ph"] == "M" and e["name"] == "thread_name" and e["tid"] != ENGINE_TID:
            rows[e["tid"]] = e["args"]["name"].removeprefix("req ")
        elif e["ph"] in "Xi" and e["tid"] != ENGINE_TID:
            rid = rows[e["tid"]]
            # Handed out while the finishing event is the last one read: nothing waits for the end.
            assert source.taken == finishing[rid], rid
            seen.add(rid)
    assert seen == set(finishing)


def test_a_request_id_used_again_after_it_finished_gets_a_new_row() -> None:
    log = EventLog()
    engine = LLMEngine(
        max_num_seqs=2,
        num_gpu_blocks=32,
        block_size=4,
        max_model_len=64,
        observers=[log],
        clock=FakeClock(),
    )
    for _ in range(2):
        engine.add_request(
            [1, 2, 3], SamplingParams(max_tokens=2, ignore_eos=True), request_id="again"
        )
        while engine.has_unfinished_requests():
            engine.step()
    trace = chrome_trace(log)
    validate_chrome_trace(trace)
    rows = [
        e["tid"]
        for e in trace["traceEvents"]
        if e["ph"] == "M" and e["name"] == "thread_name" and e["args"]["name"] == "req again"
    ]
    assert len(rows) == 2
    for tid in rows:
        assert [e["name"] for e in trace["traceEvents"] if e["tid"] == tid and e["ph"] == "i"] == [
            "finished: length"
        ]


def test_a_stream_is_read_once_and_other_data_waits_for_the_end(
    demo_events: list[Event],
) -> None:
    stream = ChromeTraceStream(demo_events)
    with pytest.raises(RuntimeError, match="not been read"):
        stream.other_data()
    list(stream)
    assert stream.num_events == len(demo_events)
    assert stream.other_data()["last_seq"] == demo_events[-1].seq
    with pytest.raises(RuntimeError, match="iterated once"):
        list(stream)
