"""The observer bus: order, subscription lifecycle, failure isolation, zero cost when idle."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from minivllm import LLMEngine
from minivllm import RequestStatus
from minivllm import SamplingParams
from minivllm.bus import EventBus
from minivllm.bus import load_observer
from minivllm.events import CounterUpdated
from minivllm.events import EngineConfigured
from minivllm.events import Event
from minivllm.events import RequestAdded
from minivllm.events import StatusChanged
from minivllm.events import StepFinished


def engine_with(*observers: Any, **kwargs: Any) -> LLMEngine:
    counter = iter(range(10**9))
    return LLMEngine(observers=observers, clock=lambda: next(counter), **kwargs)


def drive(engine: LLMEngine) -> list[tuple[str, list[int]]]:
    engine.add_request([1] * 20, SamplingParams(max_tokens=4), request_id="a")
    engine.add_request([2] * 5, SamplingParams(max_tokens=6), request_id="b")
    outs = []
    while engine.has_unfinished_requests():
        outs += [(o.request_id, o.outputs[0].token_ids) for o in engine.step()]
    return outs


def test_delivery_in_emission_order_to_subscribers_in_subscription_order() -> None:
    calls: list[tuple[str, int]] = []
    bus = EventBus(clock=lambda: 0)
    bus.subscribe(lambda e: calls.append(("first", e.seq)))
    bus.subscribe(lambda e: calls.append(("second", e.seq)), CounterUpdated)
    bus.channel(CounterUpdated).emit("r", "num_tokens", 1, 2)
    bus.channel(RequestAdded).emit("r", 3, 4, 0, (), False)
    assert calls == [("first", 0), ("second", 0), ("first", 1)]


def test_sequence_numbers_are_gapless_and_steps_advance() -> None:
    seen: list[Event] = []
    engine = engine_with(seen.append)
    drive(engine)
    assert [e.seq for e in seen] == list(range(len(seen)))
    steps = [e.step for e in seen]
    assert steps == sorted(steps) and steps[-1] == engine.step_index - 1


def test_subscription_as_context_manager_and_unsubscribe() -> None:
    engine = engine_with()
    seen: list[Event] = []
    with engine.bus.subscribe(seen.append, RequestAdded) as sub:
        engine.add_request([1])
    engine.add_request([2])
    assert len(seen) == 1 and not sub.active
    sub.unsubscribe()  # idempotent


def test_handler_may_unsubscribe_itself_and_others_during_delivery() -> None:
    bus = EventBus(clock=lambda: 0)
    got: list[str] = []
    subs: dict[str, Any] = {}

    def first(event: Event) -> None:
        got.append("first")
        subs["first"].unsubscribe()
        subs["third"].unsubscribe()

    subs["first"] = bus.subscribe(first)
    subs["second"] = bus.subscribe(lambda e: got.append("second"))
    subs["third"] = bus.subscribe(lambda e: got.append("third"))
    emit = bus.channel(CounterUpdated).emit
    emit("r", "num_tokens", 1, 2)
    emit("r", "num_tokens", 2, 3)
    # The event being delivered reaches the handlers it started with.
    assert got == ["first", "second", "third", "second"]


def test_failing_handler_is_logged_once_counted_and_isolated(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def boom(event: Event) -> None:
        raise RuntimeError("observer bug")

    baseline = drive(engine_with())
    after: list[Event] = []
    engine = engine_with(boom, after.append)
    with caplog.at_level(logging.ERROR, logger="minivllm.bus"):
        assert drive(engine) == baseline
    ((name, count),) = engine.bus.errors.items()
    assert name.endswith("boom") and count == len(after) > 1
    records = [r for r in caplog.records if "observer" in r.getMessage()]
    assert len(records) == 1 and "boom" in records[0].getMessage()


def test_raise_errors_propagates_for_tests() -> None:
    def boom(event: Event) -> None:
        raise RuntimeError("observer bug")

    engine = engine_with(boom, raise_observer_errors=True)
    with pytest.raises(RuntimeError, match="observer bug"):
        engine.add_request([1])


def test_slow_and_self_unsubscribing_handlers_leave_results_unchanged() -> None:
    import time

    baseline = drive(engine_with())

    def slow(event: Event) -> None:
        time.sleep(0.0002)

    assert drive(engine_with(slow)) == baseline
    holder: dict[str, Any] = {}

    def once(event: Event) -> None:
        holder["sub"].unsubscribe()

    engine = engine_with()
    holder["sub"] = engine.bus.subscribe(once)
    assert drive(engine) == baseline


def test_no_subscriber_means_no_event_is_built() -> None:
    engine = engine_with()
    seen: list[StepFinished] = []
    engine.bus.subscribe(seen.append, StepFinished)
    drive(engine)
    # The sequence counter only moves when an event is built.
    assert engine.bus.num_emitted == len(seen) == engine.step_index
    engine2 = engine_with()
    drive(engine2)
    assert engine2.bus.num_emitted == 0


def test_subscribe_validates() -> None:
    bus = EventBus()
    with pytest.raises(TypeError, match="handler must be callable"):
        bus.subscribe(42)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown event type"):
        bus.subscribe(print, int)  # type: ignore[arg-type]


def test_unknown_observer_name_lists_the_registered_ones() -> None:
    with pytest.raises(ValueError, match="unknown observer 'nope'; registered observers: "):
        load_observer("nope")


def test_observers_by_name_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    import minivllm.bus as bus_module

    calls: list[Event] = []

    class FakeEntryPoint:
        name = "recorder"

        def load(self) -> Any:
            return lambda: calls.append

    def fake_entry_points(group: str, name: str | None = None) -> list[FakeEntryPoint]:
        assert group == "minivllm.observers"
        return [FakeEntryPoint()] if name in (None, "recorder") else []

    monkeypatch.setattr(bus_module, "entry_points", fake_entry_points)
    monkeypatch.setenv("MINIVLLM_OBSERVERS", "recorder")
    engine = LLMEngine()
    engine.add_request([1])
    assert any(isinstance(e, RequestAdded) for e in calls)
    monkeypatch.delenv("MINIVLLM_OBSERVERS")
    calls.clear()
    engine = LLMEngine(observers=["recorder"])
    engine.add_request([1])
    assert any(isinstance(e, StatusChanged) for e in calls) is False and calls


def test_publish_takes_the_payload_by_keyword_or_position() -> None:
    bus = EventBus(clock=lambda: 7)
    seen: list[Event] = []
    bus.subscribe(seen.append)
    by_keyword = bus.publish(
        StatusChanged,
        request_id="r",
        old_status=RequestStatus.WAITING,
        new_status=RequestStatus.RUNNING,
        num_computed_tokens=0,
        num_tokens=5,
        num_output_tokens=0,
        stop_reason=None,
    )
    by_position = bus.publish(CounterUpdated, "r", "num_computed_tokens", 0, 5)
    mixed = bus.publish(CounterUpdated, "r", counter="num_tokens", old=5, new=6)
    assert seen == [by_keyword, by_position, mixed]
    assert [e.seq for e in seen] == [0, 1, 2] and {e.ts_ns for e in seen} == {7}
    assert isinstance(mixed, CounterUpdated) and mixed.counter == "num_tokens"


def test_a_bad_payload_raises_and_uses_no_sequence_number() -> None:
    bus = EventBus(clock=lambda: 0)
    bus.subscribe(lambda e: None)
    with pytest.raises(TypeError):
        bus.publish(CounterUpdated, "r", nope=1)
    assert bus.publish(CounterUpdated, "r", "num_tokens", 1, 2).seq == 0  # type: ignore[union-attr]


def _step_finished(bus: EventBus) -> Event | None:
    return bus.publish(StepFinished, {}, (), (), 0, 0, 10, 0)


@pytest.mark.parametrize("listening", [True, False])
def test_publishing_step_finished_closes_the_step(listening: bool) -> None:
    bus = EventBus(clock=lambda: 0)
    seen: list[Event] = []
    bus.subscribe(seen.append, CounterUpdated, *([StepFinished] if listening else []))
    for step in range(3):
        bus.publish(CounterUpdated, "r", "num_tokens", step, step + 1)
        finished = _step_finished(bus)
        assert (finished is not None) is listening
    assert bus.step == 3
    assert [e.step for e in seen if isinstance(e, CounterUpdated)] == [0, 1, 2]


def test_publishing_by_keyword_stamps_delivers_and_closes_the_step_as_by_position() -> None:
    def publish_both(bus: EventBus, by_keyword: bool) -> list[Event]:
        seen: list[Event] = []
        bus.subscribe(seen.append)
        fields = dict(num_scheduled_tokens={"r": 3}, preempted_req_ids=(), finished_req_ids=())
        sizes = dict(num_running=1, num_waiting=0, num_free_blocks=9, num_used_blocks=1)
        for _ in range(2):
            if by_keyword:
                bus.publish(StepFinished, **fields, **sizes)
                bus.publish(CounterUpdated, "r", "num_tokens", 1, new=2, token_id=7)
            else:
                bus.publish(StepFinished, *fields.values(), *sizes.values())
                bus.publish(CounterUpdated, "r", "num_tokens", 1, 2, 7)
        return seen

    by_keyword = publish_both(EventBus(clock=lambda: 5), by_keyword=True)
    assert by_keyword == publish_both(EventBus(clock=lambda: 5), by_keyword=False)
    assert [(e.seq, e.step) for e in by_keyword] == [(0, 0), (1, 1), (2, 1), (3, 2)]


def test_the_engine_and_the_bus_agree_on_the_step() -> None:
    seen: list[Event] = []
    engine = engine_with(seen.append)
    drive(engine)
    assert engine.bus.step == engine.step_index
    finished = [e for e in seen if isinstance(e, StepFinished)]
    assert [e.step for e in finished] == list(range(engine.step_index))


def test_a_failing_observer_is_logged_with_its_source_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def boom(event: Event) -> None:
        raise RuntimeError("observer bug")

    engine = engine_with(boom)
    with caplog.at_level(logging.ERROR, logger="minivllm.bus"):
        engine.add_request([1])
    (record,) = [r for r in caplog.records if r.exc_info]
    text = logging.Formatter().formatException(record.exc_info)  # type: ignore[arg-type]
    assert 'File "<string>"' not in text
    assert "bus.py" in text and "in boom" in text and "observer bug" in text


class _Routing:
    """An observer that routes two types to its own lists and wants nothing else."""

    def __init__(self) -> None:
        self.counters: list[Event] = []
        self.steps: list[Event] = []

    def __call__(self, event: Event) -> None:
        raise AssertionError("routed observers are not called directly")

    def handlers_for(self, event_types: tuple[type[Event], ...]) -> dict[type[Event], Any]:
        return {CounterUpdated: self.counters.append, StepFinished: self.steps.append}


def test_an_observer_routes_the_types_it_wants_and_gets_no_others() -> None:
    observer = _Routing()
    engine = engine_with(observer)
    drive(engine)
    assert observer.counters and observer.steps
    assert {type(e) for e in observer.counters} == {CounterUpdated}
    assert len(observer.steps) == engine.step_index
    assert not engine.bus.has_subscribers(RequestAdded)
    assert engine.bus.errors == {}


def test_routing_is_validated() -> None:
    class Bad:
        def __call__(self, event: Event) -> None: ...

        def handlers_for(self, event_types: tuple[type[Event], ...]) -> dict[type[Event], Any]:
            return {CounterUpdated: 42}

    bus = EventBus()
    with pytest.raises(TypeError, match=r"handlers_for\(\) must map"):
        bus.subscribe(Bad())
    with pytest.raises(TypeError, match=r"handlers_for\(\) must map"):
        bus.subscribe(_Routing(), RequestAdded)  # it routes types it was not given


def test_a_failing_routed_handler_is_reported_under_the_observer(
    caplog: pytest.LogCaptureFixture,
) -> None:
    class Failing(_Routing):
        def handlers_for(self, event_types: tuple[type[Event], ...]) -> dict[type[Event], Any]:
            def boom(event: Event) -> None:
                raise RuntimeError("routed bug")

            return dict.fromkeys(event_types, boom)

    engine = engine_with(Failing())
    with caplog.at_level(logging.ERROR, logger="minivllm.bus"):
        engine.add_request([1])
    ((name, count),) = engine.bus.errors.items()
    assert name.endswith("Failing") and count == 2  # EngineConfigured, RequestAdded


def test_the_engine_announces_its_mode_and_each_request_its_priority_and_sampling() -> None:
    log: list[Event] = []
    engine = LLMEngine(
        async_scheduling=True,
        policy="priority",
        scheduler_reserve_full_isl=False,
        observers=[log.append],
    )
    engine.add_request("Hi", SamplingParams(temperature=0.5, top_p=0.9), priority=2)
    configured, added = log[0], log[1]
    assert isinstance(configured, EngineConfigured) and isinstance(added, RequestAdded)
    assert (configured.policy, configured.async_scheduling) == ("priority", True)
    assert configured.scheduler_reserve_full_isl is False
    assert (added.priority, added.temperature, added.top_p) == (2, 0.5, 0.9)
