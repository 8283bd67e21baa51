"""EventLog and Recorder: gapless sequence numbers, loud failures."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import settings

from helpers.trace import reference
from helpers.trace import workloads
from lifecycle_trace.eventlog import EventLog
from lifecycle_trace.eventlog import Recorder
from lifecycle_trace.eventlog import SequenceError
from lifecycle_trace.eventlog import record
from minivllm.bus import EventBus
from minivllm.engine.llm_engine import LLMEngine
from minivllm.events import EVENT_TYPES
from minivllm.events import CounterUpdated
from minivllm.events import Event
from minivllm.events import StatusChanged
from minivllm.events import StepFinished
from minivllm.sampling_params import SamplingParams
from minivllm.workload import Workload
from minivllm.workload import run_workload


def _drain(engine: LLMEngine) -> None:
    while engine.has_unfinished_requests():
        engine.step()


def test_recorder_keeps_every_event_in_order() -> None:
    engine = LLMEngine()
    with record(engine) as rec:
        engine.add_request("hello", SamplingParams(max_tokens=3))
        _drain(engine)
    assert len(rec.log) == engine.bus.num_emitted
    assert [e.seq for e in rec.log] == list(range(engine.bus.num_emitted))
    assert rec.log.first_seq == 0
    assert rec.log.last_seq == engine.bus.num_emitted - 1


def test_stopped_recorder_sees_nothing_more() -> None:
    engine = LLMEngine()
    everything: list[object] = []
    engine.bus.subscribe(everything.append)
    rec = Recorder(engine)
    engine.add_request("hello", SamplingParams(max_tokens=3))
    n = len(rec.stop())
    _drain(engine)
    assert len(rec.log) == n == 2  # EngineConfigured, RequestAdded
    assert len(everything) == engine.bus.num_emitted > n


def test_gap_names_the_missing_seqs_and_leaves_the_log_unchanged() -> None:
    events = []
    for _ in run_workload(reference("a"), on_engine=lambda e: e.bus.subscribe(events.append)):
        pass
    log = EventLog(events[:5])
    with pytest.raises(SequenceError) as info:
        log.append(events[7])
    assert "expected seq 5, got seq 7" in str(info.value)
    assert "seq 5..6" in str(info.value)
    assert (info.value.expected, info.value.got) == (5, 7)
    assert len(log) == 5
    log.append(events[5])
    assert log.last_seq == 5


def test_repeat_is_refused() -> None:
    events = []
    for _ in run_workload(reference("a"), on_engine=lambda e: e.bus.subscribe(events.append)):
        pass
    log = EventLog(events[:3])
    with pytest.raises(SequenceError, match="repeated or out-of-order"):
        log.append(events[2])


def test_log_may_start_mid_run() -> None:
    events = []
    for _ in run_workload(reference("a"), on_engine=lambda e: e.bus.subscribe(events.append)):
        pass
    log = EventLog(events[10:])
    assert log.first_seq == 10 and len(log) == len(events) - 10
    assert log[0] == events[10] and log[-2:] == events[-2:]


def test_log_subscribed_to_one_type_fails_loudly() -> None:
    # Another observer listens to everything, so the bus numbers events the log never sees.
    engine = LLMEngine(raise_observer_errors=True)
    engine.bus.subscribe(lambda e: None)
    engine.bus.subscribe(EventLog(), StatusChanged)
    engine.add_request("hello", SamplingParams(max_tokens=2))
    with pytest.raises(SequenceError, match="missing"):
        _drain(engine)


def test_recorder_refuses_a_non_engine() -> None:
    with pytest.raises(TypeError, match="LLMEngine or an EventBus"):
        Recorder(object())  # type: ignore[arg-type]


@settings(max_examples=25, deadline=None)
@given(workloads())
def test_the_recorded_log_gives_back_exactly_the_events_delivered(workload: Workload) -> None:
    delivered: list[Event] = []

    def attach(engine: LLMEngine) -> None:
        engine.bus.subscribe(delivered.append)
        recorders.append(record(engine))

    recorders: list[Recorder] = []
    for _ in run_workload(workload, on_engine=attach):
        pass
    log = recorders[0].stop()
    assert list(log) == delivered
    assert [type(e) for e in log] == [type(e) for e in delivered]
    assert len(log) == len(delivered) and log[:] == delivered
    for i in (0, len(delivered) // 3, -1):
        assert log[i] == delivered[i]
    assert EventLog(delivered)[:] == delivered


def test_a_gap_in_events_the_bus_delivered_is_found_at_the_end_of_the_step() -> None:
    bus = EventBus(clock=lambda: 0)
    log = EventLog()
    bus.subscribe(log)
    bus.publish(CounterUpdated, "r", "num_tokens", 1, 2)
    bus._next_seq += 1  # an event the log never saw
    bus.publish(CounterUpdated, "r", "num_tokens", 2, 3)
    with pytest.raises(SequenceError, match="expected seq 1, got seq 2"):
        log.handlers_for(EVENT_TYPES)[StepFinished](StepFinished(3, 0, 0, {}, (), (), 0, 0, 1, 0))
    assert [e.seq for e in log] == [0]
