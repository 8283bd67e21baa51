"""Re-entrancy and threads: one engine call at a time, refused clearly otherwise.

An observer that calls ``add_request``, ``abort_request`` or ``step`` from its
handler is refused with ``EngineBusyError`` before anything changes, so the
log of the run stays whole and in order (every other observer still gets
every event). A second thread calling while one is inside is refused the same
way, naming both threads.
"""

from __future__ import annotations

import io
import threading
from collections.abc import Callable
from typing import Any

import pytest

from lifecycle_trace.checker import check
from lifecycle_trace.log import EventLog
from lifecycle_trace.log import JsonlWriter
from minivllm import DummyModelRunner
from minivllm import LLMEngine
from minivllm import SamplingParams
from minivllm.engine.guard import EngineBusyError
from minivllm.events import Event
from minivllm.events import RequestAdded
from minivllm.events import StatusChanged
from minivllm.events import StepFinished
from minivllm.events import event_to_dict

CALLS: dict[str, Callable[[LLMEngine], object]] = {
    "add_request": lambda engine: engine.add_request([5, 6], request_id="late"),
    "abort_request": lambda engine: engine.abort_request("a"),
    "step": lambda engine: engine.step(),
}


def _engine(*observers: Any, **kwargs: Any) -> LLMEngine:
    return LLMEngine(
        DummyModelRunner(token_id=7),
        observers=list(observers),
        clock=lambda: 0,
        max_num_batched_tokens=8,
        max_num_seqs=2,
        max_model_len=64,
        **kwargs,
    )


def _drive(engine: LLMEngine) -> None:
    engine.add_request([1] * 10, SamplingParams(max_tokens=4), request_id="a")
    engine.add_request([2] * 3, SamplingParams(max_tokens=4), request_id="b")
    while engine.has_unfinished_requests():
        engine.step()


def _reference() -> list[dict[str, Any]]:
    log = EventLog()
    _drive(_engine(log))
    return [event_to_dict(e) for e in log]


class CallsBack:
    """An observer that calls back into the engine on the first event of one type."""

    def __init__(self, call: str, on: type[Event]) -> None:
        self.call = call
        self.on = on
        self.engine: LLMEngine | None = None
        self.refusals: list[EngineBusyError] = []

    def __call__(self, event: Event) -> None:
        if type(event) is self.on and not self.refusals:
            assert self.engine is not None
            try:
                CALLS[self.call](self.engine)
            except EngineBusyError as exc:
                self.refusals.append(exc)
                raise


@pytest.mark.parametrize("on", [RequestAdded, StatusChanged, StepFinished])
@pytest.mark.parametrize("call", sorted(CALLS))
def test_a_call_from_an_observer_is_refused_and_the_log_stays_whole(
    call: str, on: type[Event], caplog: pytest.LogCaptureFixture
) -> None:
    observer = CallsBack(call, on)
    later = EventLog()  # subscribed after the observer: must still get every event, in order
    file = io.BytesIO()
    engine = _engine(observer, later, JsonlWriter(file))
    observer.engine = engine
    _drive(engine)
    (refusal,) = observer.refusals
    message = str(refusal)
    assert f"LLMEngine.{call}() was called while" in message
    assert "from an observer's handler" in message
    assert [event_to_dict(e) for e in later] == _reference()
    assert check(later) == []
    assert len(file.getvalue().splitlines()) == len(later)
    assert sum(engine.bus.errors.values()) == 1  # counted as the observer's error


def test_with_raise_observer_errors_the_refusal_reaches_the_caller_after_the_step() -> None:
    observer = CallsBack("abort_request", StepFinished)
    later = EventLog()
    engine = _engine(observer, later, raise_observer_errors=True)
    observer.engine = engine
    engine.add_request([1] * 3, SamplingParams(max_tokens=2), request_id="a")
    with pytest.raises(EngineBusyError, match="abort_request"):
        engine.step()
    # The step itself is done and every one of its events delivered.
    assert engine.step_index == 1
    assert type(later[-1]) is StepFinished
    assert engine.scheduler.requests["a"].num_output_tokens == 1


def test_an_observer_may_read_the_engine() -> None:
    seen: list[int] = []
    engine = _engine()
    engine.bus.subscribe(lambda e: seen.append(engine.get_num_unfinished_requests()), StepFinished)
    _drive(engine)
    assert seen and seen[-1] == 0


def test_a_second_thread_is_refused_while_a_step_runs() -> None:
    inside = threading.Event()
    release = threading.Event()

    class Blocking(DummyModelRunner):
        def execute_model(self, scheduler_output: Any) -> Any:
            inside.set()
            assert release.wait(10)
            return super().execute_model(scheduler_output)

    engine = LLMEngine(Blocking(token_id=7), max_model_len=64)
    engine.add_request([1, 2, 3], SamplingParams(max_tokens=2), request_id="a")
    errors: list[BaseException] = []
    worker = threading.Thread(target=engine.step, name="stepper")
    worker.start()
    assert inside.wait(10)
    for call in CALLS.values():
        try:
            call(engine)
        except EngineBusyError as exc:
            errors.append(exc)
    release.set()
    worker.join(10)
    assert len(errors) == 3
    for exc in errors:
        assert "while thread 'stepper' was inside step()" in str(exc)
        assert "not thread-safe" in str(exc)
    # Nothing the refused calls would have done happened; the engine goes on.
    assert engine.step_index == 1
    assert "late" not in engine.scheduler.requests
    while engine.has_unfinished_requests():
        engine.step()
    assert engine.step_index == 2


def test_steps_from_two_threads_in_turn_are_fine() -> None:
    lock = threading.Lock()
    engine = _engine()
    for i in range(8):
        engine.add_request([i + 1] * 4, SamplingParams(max_tokens=3))
    refusals: list[BaseException] = []

    def work() -> None:
        while True:
            with lock:
                if not engine.has_unfinished_requests():
                    return
                try:
                    engine.step()
                except EngineBusyError as exc:  # pragma: no cover - the lock prevents it
                    refusals.append(exc)

    threads = [threading.Thread(target=work) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert refusals == []
    assert not engine.has_unfinished_requests()
