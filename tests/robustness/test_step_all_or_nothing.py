"""A step is all or nothing: whatever fails inside ``step()``, the engine is left as before it.

Each example runs a random workload twice: once undisturbed, once with one
step made to fail (the model runner raises or returns something malformed,
or a failure is injected deep inside scheduling or output processing). The
failed step must leave the engine's whole state (queues in order, every
request's counters and tokens, block tables, ref counts, the free queue's
order, the prefix cache, the async batch queue) exactly as it was, raise a
``StepFailedError`` that says what failed, and the run must then finish with
the same outputs as the undisturbed one.

Its events are all or nothing too: observers get a step's events once it is
done, so a failed step leaves no event anywhere (sequence numbers included),
and the log of the disturbed run is the log of the undisturbed one.
"""

from __future__ import annotations

import io
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import example
from hypothesis import given
from hypothesis import strategies as st

from helpers.state import engine_state
from lifecycle_trace.checker import check
from lifecycle_trace.log import EventLog
from lifecycle_trace.log import JsonlWriter
from lifecycle_trace.log import iter_jsonl
from minivllm import DummyModelRunner
from minivllm import LLMEngine
from minivllm import ModelRunnerOutput
from minivllm import SamplingParams
from minivllm.engine.core import StepFailedError
from minivllm.engine.guard import EngineDeadError
from minivllm.events import Event
from minivllm.events import event_to_dict
from minivllm.model_executor.runner import output_index
from minivllm.request import Request

EOS = 257


def _sample(request: Request) -> int:
    """Letters A to F, with an EOS now and then, all decided by the request and position."""
    i = output_index(request)
    prompt = request.prompt_token_ids
    seed = prompt[0] * 7 + prompt[-1] * 3 + i * 13
    return EOS if seed % 23 == 0 and i > 0 else 65 + seed % 6


Fault = Callable[[ModelRunnerOutput], Any]


def _raise(out: ModelRunnerOutput) -> Any:
    raise RuntimeError("the device fell over")


RUNNER_FAULTS: dict[str, Fault] = {
    "raises": _raise,
    "returns None": lambda out: None,
    "returns a tuple": lambda out: (out.req_ids, out.sampled_token_ids),
    "None tokens": lambda out: ModelRunnerOutput(out.req_ids, [None] * len(out.req_ids)),  # type: ignore[list-item]
    "one request short": lambda out: ModelRunnerOutput(
        out.req_ids[:-1], out.sampled_token_ids[:-1]
    ),
    "two tokens": lambda out: ModelRunnerOutput(
        out.req_ids, [t + t for t in out.sampled_token_ids]
    ),
    "out of vocabulary": lambda out: ModelRunnerOutput(
        out.req_ids, [[999] if t else [] for t in out.sampled_token_ids]
    ),
    "numpy ints": lambda out: ModelRunnerOutput(
        out.req_ids, [[np.int64(x) for x in t] for t in out.sampled_token_ids]
    ),
    "token ids as text": lambda out: ModelRunnerOutput(
        out.req_ids, [[str(x) for x in t] for t in out.sampled_token_ids]
    ),
}


class FaultyRunner:
    """The echo-like runner above, which corrupts its output once when armed."""

    def __init__(self) -> None:
        self.inner = DummyModelRunner(sample_fn=_sample)
        self.fault: Fault | None = None

    def execute_model(self, scheduler_output: Any) -> Any:
        out = self.inner.execute_model(scheduler_output)
        fault, self.fault = self.fault, None
        return out if fault is None else fault(out)


class Injected(Exception):
    """A failure injected inside the engine (not from the runner)."""


def _fail_on_call(obj: Any, name: str, n: int, after: bool = False) -> Callable[[], None]:
    """Make ``obj.name`` raise on its ``n``-th call from now (after doing its work if ``after``)."""
    real = getattr(obj, name)
    calls = [0]

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        calls[0] += 1
        if calls[0] == n and not after:
            raise Injected(f"{name} failed")
        result = real(*args, **kwargs)
        if calls[0] == n:
            raise Injected(f"{name} failed after its work")
        return result

    setattr(obj, name, wrapper)
    return lambda: delattr(obj, name)


INTERNAL_FAULTS: dict[str, Callable[[LLMEngine, int], Callable[[], None]]] = {
    "allocate_slots": lambda e, n: _fail_on_call(e.scheduler.kv_cache_manager, "allocate_slots", n),
    "get_new_blocks": lambda e, n: _fail_on_call(
        e.scheduler.kv_cache_manager.block_pool, "get_new_blocks", n, after=True
    ),
    "free_blocks": lambda e, n: _fail_on_call(
        e.scheduler.kv_cache_manager.block_pool, "free_blocks", n, after=True
    ),
    "update_from_output": lambda e, n: _fail_on_call(e.scheduler, "update_from_output", 1, True),
    "make_outputs": lambda e, n: _fail_on_call(e, "_make_outputs", 1, after=True),
    "check_stop_strings": lambda e, n: _fail_on_call(e, "_check_stop_strings", n, after=True),
}


@st.composite
def workloads(draw: st.DrawFn) -> dict[str, Any]:
    """Small engines under pressure (preemption, chunking, prefix hits) and a few requests."""
    block_size = draw(st.sampled_from([2, 4, 8]))
    max_model_len = draw(st.integers(16, 48))
    min_blocks = -(-max_model_len // block_size) + 1
    engine = {
        "block_size": block_size,
        "max_model_len": max_model_len,
        "num_gpu_blocks": draw(st.integers(min_blocks, min_blocks * 3)),
        "max_num_seqs": draw(st.integers(1, 4)),
        "max_num_batched_tokens": draw(st.sampled_from([8, 16, 64])),
        "enable_prefix_caching": draw(st.booleans()),
        "async_scheduling": draw(st.booleans()),
        "policy": draw(st.sampled_from(["fcfs", "priority"])),
    }
    engine["max_num_batched_tokens"] = max(engine["max_num_batched_tokens"], engine["max_num_seqs"])
    shared = draw(st.lists(st.integers(65, 70), min_size=0, max_size=12))
    requests = []
    for i in range(draw(st.integers(1, 5))):
        tail = draw(st.lists(st.integers(65, 70), min_size=1, max_size=20))
        prompt = (shared + tail)[: max_model_len - 2]
        max_tokens = draw(st.integers(1, 10))
        stop = draw(st.sampled_from([(), ("C",), ("DA",), ("F", "EB")]))
        params = SamplingParams(max_tokens=max_tokens, stop=stop)
        requests.append((str(i), prompt, params, draw(st.integers(0, 3)), draw(st.integers(0, 4))))
    return {"engine": engine, "requests": requests}


Outputs = dict[str, tuple[list[int], str | None]]


def _without_time(events: Any) -> list[dict[str, Any]]:
    return [{k: v for k, v in event_to_dict(e).items() if k != "ts_ns"} for e in events]


Disturb = Callable[[LLMEngine, FaultyRunner], Callable[[], None] | None]


def _run(
    workload: dict[str, Any], disturb: Disturb | None = None
) -> tuple[Outputs, int, list[dict[str, Any]]]:
    """Run to the end; with ``disturb``, every step is first tried once with a fault armed.

    A tried step that fails must leave the engine exactly as it was; it is then
    run again undisturbed. Returns the outputs, how many tries failed, and the
    events without their times (the same in memory and in the file written).
    """
    runner = FaultyRunner()
    log = EventLog()  # takes a step's events as they come, and forgets an undone step's
    file = io.BytesIO()
    seen: list[Event] = []  # a plain observer: gets a step's events once it is done
    engine = LLMEngine(
        runner, observers=[log, JsonlWriter(file), seen.append], **workload["engine"]
    )
    engine.abort_request([])  # the engine announces its configuration before any step
    pending = sorted(workload["requests"], key=lambda r: r[4])
    final: dict[str, tuple[list[int], str | None]] = {}
    failures = 0
    while pending or engine.has_unfinished_requests():
        while pending and pending[0][4] <= engine.step_index:
            rid, prompt, params, priority, _ = pending.pop(0)
            engine.add_request(prompt, params, request_id=rid, priority=priority)
        outputs = None
        if disturb is not None:
            before = engine_state(engine)
            undo = disturb(engine, runner)
            try:
                outputs = engine.step()
            except StepFailedError as exc:
                failures += 1
                assert f"step {before['step_index']} failed and was undone" in str(exc)
                assert engine_state(engine) == before
            finally:
                runner.fault = None
                if undo is not None:
                    undo()
        if outputs is None:
            outputs = engine.step()
        for out in outputs:
            if out.finished:
                final[out.request_id] = (out.outputs[0].token_ids, out.outputs[0].finish_reason)
        assert engine.step_index < 300, "the run does not end"
    events = _without_time(log)
    assert _without_time(seen) == events
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp, "log.jsonl")
        path.write_bytes(file.getvalue())
        assert _without_time(iter_jsonl(path)) == events
    if not workload["engine"]["async_scheduling"]:  # the checker's rules are the synchronous ones
        assert check(log) == []
    return final, failures, events


@given(workloads(), st.sampled_from(sorted(RUNNER_FAULTS)))
def test_a_runner_failure_undoes_the_step(workload: dict[str, Any], fault: str) -> None:
    expected, _, expected_events = _run(workload)

    def arm(engine: LLMEngine, runner: FaultyRunner) -> None:
        runner.fault = RUNNER_FAULTS[fault]

    got, failures, events = _run(workload, arm)
    assert got == expected
    assert events == expected_events
    if fault in ("raises", "returns None", "returns a tuple"):
        assert failures > 0


# Under async scheduling, a request preempted while its batch is in flight gets that batch's
# token and stops on it: it leaves the waiting queue inside update_from_output.
PREEMPTED_AND_STOPPED = {
    "engine": {
        "block_size": 2,
        "max_model_len": 16,
        "num_gpu_blocks": 10,
        "max_num_seqs": 3,
        "max_num_batched_tokens": 16,
        "enable_prefix_caching": False,
        "async_scheduling": True,
        "policy": "fcfs",
    },
    "requests": [
        ("0", [67, 66, 70, 66, 68], SamplingParams(max_tokens=4), 0, 0),
        ("1", [69, 70, 65, 66, 70, 70, 67, 65], SamplingParams(max_tokens=7, stop="C"), 0, 0),
        ("2", [68, 69, 70, 66, 67, 67, 69, 68, 69, 68], SamplingParams(max_tokens=6), 0, 0),
        ("3", [66, 70, 68, 68, 70, 66, 67, 69, 70], SamplingParams(max_tokens=8, stop="DA"), 0, 0),
    ],
}


@example(PREEMPTED_AND_STOPPED, "update_from_output", 1)
@example(PREEMPTED_AND_STOPPED, "make_outputs", 1)
@given(workloads(), st.sampled_from(sorted(INTERNAL_FAULTS)), st.integers(1, 3))
def test_a_failure_inside_the_engine_undoes_the_step(
    workload: dict[str, Any], fault: str, nth: int
) -> None:
    expected, _, expected_events = _run(workload)

    def arm(engine: LLMEngine, runner: FaultyRunner) -> Callable[[], None]:
        return INTERNAL_FAULTS[fault](engine, nth)

    got, _, events = _run(workload, arm)
    assert got == expected
    assert events == expected_events


@pytest.mark.parametrize("fault", sorted(RUNNER_FAULTS))
@pytest.mark.parametrize("async_scheduling", [False, True])
def test_each_runner_fault_is_named(fault: str, async_scheduling: bool) -> None:
    runner = FaultyRunner()
    engine = LLMEngine(runner, async_scheduling=async_scheduling, max_model_len=64)
    engine.add_request([65] * 5, SamplingParams(max_tokens=4), request_id="r")
    before = engine_state(engine)
    runner.fault = RUNNER_FAULTS[fault]
    with pytest.raises(StepFailedError) as info:
        engine.step()
    assert engine_state(engine) == before
    message = str(info.value)
    assert "step 0 failed and was undone" in message
    assert "model runner" in message
    if fault == "raises":
        assert "RuntimeError: the device fell over" in message
        assert isinstance(info.value.__cause__, RuntimeError)
    # The engine keeps serving.
    while engine.has_unfinished_requests():
        engine.step()


def test_ctrl_c_inside_a_step_undoes_it_and_is_raised_as_it_is() -> None:
    class Interrupted(FaultyRunner):
        def execute_model(self, scheduler_output: Any) -> Any:
            raise KeyboardInterrupt

    engine = LLMEngine(Interrupted(), max_model_len=64)
    engine.add_request([65] * 5, SamplingParams(max_tokens=4), request_id="r")
    before = engine_state(engine)
    with pytest.raises(KeyboardInterrupt):
        engine.step()
    assert engine_state(engine) == before


def test_ctrl_c_outside_the_runner_leaves_a_dead_engine_that_says_so() -> None:
    engine = LLMEngine(FaultyRunner(), max_model_len=64)
    engine.add_request([65] * 5, SamplingParams(max_tokens=4), request_id="r")

    def interrupted(*args: Any) -> Any:
        raise KeyboardInterrupt

    engine.scheduler.update_from_output = interrupted  # type: ignore[method-assign]
    with pytest.raises(KeyboardInterrupt):
        engine.step()
    del engine.scheduler.update_from_output
    for call in (engine.step, lambda: engine.add_request([1]), lambda: engine.abort_request("r")):
        with pytest.raises(EngineDeadError, match="interrupted \\(KeyboardInterrupt\\) outside"):
            call()


def test_a_decode_failure_does_not_leave_the_engine_stuck() -> None:
    runner = FaultyRunner()
    engine = LLMEngine(runner, max_model_len=64)
    engine.add_request([65] * 5, SamplingParams(max_tokens=3), request_id="r")
    engine.step()  # prefill
    runner.fault = _raise
    with pytest.raises(StepFailedError):
        engine.step()
    outputs = []
    while engine.has_unfinished_requests():
        outputs += engine.step()
    assert outputs[-1].finished
    assert len(outputs[-1].outputs[0].token_ids) == 3
