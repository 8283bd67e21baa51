"""The tracer: the log it writes from inside vLLM tells, step by step, what vLLM did."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

from helpers.vllm import V1_NAMES, V2_NAMES, Reference, reference, skip_without_vllm

skip_without_vllm()

from lifecycle_trace.fold.timeline import TimelineBuilder  # noqa: E402
from lifecycle_trace.reader import iter_jsonl  # noqa: E402
from lifecycle_trace.testing import FakeClock  # noqa: E402
from lifecycle_trace.vllm import (  # noqa: E402
    LOG_ENV,
    AsyncTracingScheduler,
    TracingScheduler,
    attach,
    tracer_of,
)
from lifecycle_trace.vllm._tracer import _status  # noqa: E402
from lifecycle_trace.vllm.driver import VllmEngine, build_scheduler, run_workload  # noqa: E402
from minivllm.events import Event, StatusChanged  # noqa: E402
from minivllm.request import RequestStatus  # noqa: E402


def _traced_run(ref: Reference, **kwargs: Any) -> tuple[list[Event], list[Any]]:
    log: list[Event] = []
    engine = VllmEngine(
        ref.token,
        async_scheduling=ref.async_scheduling,
        policy=ref.policy,
        observers=[log.append],
        clock=FakeClock(),
        **kwargs,
        **ref.engine_kwargs,
    )
    steps = list(run_workload(engine, ref.requests, priorities=ref.priorities, until_idle=ref.v2))
    return log, steps


@pytest.mark.parametrize("name", V1_NAMES + V2_NAMES)
def test_the_log_rebuilds_vllms_state_after_every_step(name: str) -> None:
    ref = reference(name)
    log, steps = _traced_run(ref)
    assert [s.to_json(ref.v2) for s in steps] == ref.expected  # the driver is vLLM itself
    builder = TimelineBuilder()
    builder.feed_all(log)
    timelines = builder.timelines()
    for line in ref.expected:
        for rid, state in line["reqs"].items():
            sample = timelines[rid].state_at(line["step"])
            have = [sample.status.name, sample.num_computed_tokens, sample.num_tokens]
            have.append(sample.num_output_tokens)
            assert have == state[:4], f"step {line['step']} request {rid}"


def _scheduler(cls: type[Any] | None = None) -> Any:
    return build_scheduler(reference("a").engine_kwargs, scheduler_cls=cls, async_scheduling=False)


def test_attach_refuses_what_it_cannot_trace() -> None:
    with pytest.raises(TypeError, match="must be a vLLM Scheduler, got object"):
        attach(object())
    scheduler = _scheduler()
    attach(scheduler)
    with pytest.raises(ValueError, match="already traced"):
        attach(scheduler)
    busy = VllmEngine(**reference("a").engine_kwargs)
    busy.add_request([1, 2, 3])
    with pytest.raises(ValueError, match="already holds 1 request"):
        attach(busy.scheduler)


def test_a_tracing_scheduler_class_writes_the_log_named_by_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ref = reference("d")
    monkeypatch.setenv(LOG_ENV, str(tmp_path / "trace-{pid}.jsonl"))
    engine = VllmEngine(scheduler_cls=TracingScheduler, **ref.engine_kwargs)
    assert isinstance(engine.scheduler, TracingScheduler)
    steps = list(run_workload(engine, ref.requests))
    [path] = tmp_path.glob("trace-*.jsonl")
    assert path.name.removeprefix("trace-").removesuffix(".jsonl").isdigit()
    finished = [
        e.request_id
        for e in iter_jsonl(path)
        if isinstance(e, StatusChanged) and e.new_status > RequestStatus.PREEMPTED
    ]
    assert sorted(finished) == sorted(r.id for r in ref.requests)
    assert len(steps) == len(ref.expected)


def test_the_async_tracing_scheduler_writes_the_async_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ref = reference("e_async")
    monkeypatch.setenv(LOG_ENV, str(tmp_path / "async.jsonl"))
    engine = VllmEngine(
        ref.token, async_scheduling=True, scheduler_cls=AsyncTracingScheduler, **ref.engine_kwargs
    )
    list(run_workload(engine, ref.requests, until_idle=True))
    timelines = TimelineBuilder()
    timelines.feed_all(iter_jsonl(tmp_path / "async.jsonl"))
    got = {rid: t.finish_status for rid, t in timelines.timelines().items()}
    assert got == {
        "r0": RequestStatus.FINISHED_LENGTH_CAPPED,
        "r1": RequestStatus.FINISHED_STOPPED,
    }


def test_a_tracing_scheduler_without_the_environment_variable_says_what_is_missing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(LOG_ENV, raising=False)
    with pytest.raises(ValueError, match=LOG_ENV):
        _scheduler(TracingScheduler)


def test_a_failing_hook_switches_tracing_off_and_vllm_runs_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    ref = reference("a")
    engine = VllmEngine(**ref.engine_kwargs)
    log: list[Event] = []
    attach(engine.scheduler, [log.append])
    tracer = tracer_of(engine.scheduler)
    assert tracer is not None

    def broken(request: Any) -> None:
        raise RuntimeError("a bug in the tracer")

    tracer.after_tokens = broken  # type: ignore[method-assign]
    with caplog.at_level(logging.ERROR, logger="lifecycle_trace.vllm"):
        steps = list(run_workload(engine, ref.requests))
    assert len(steps) == len(ref.expected)  # vLLM finished the workload
    assert tracer_of(engine.scheduler) is None
    assert "lifecycle tracing failed" in caplog.text
    assert log  # what was traced before the failure is kept


def test_a_failing_hook_raises_when_strict() -> None:
    ref = reference("a")
    engine = VllmEngine(observers=[lambda e: None], **ref.engine_kwargs)  # strict
    tracer = tracer_of(engine.scheduler)
    assert tracer is not None and tracer.strict

    def broken(request: Any) -> None:
        raise RuntimeError("a bug in the tracer")

    tracer.after_tokens = broken  # type: ignore[method-assign]
    with pytest.raises(RuntimeError, match="a bug in the tracer"):
        list(run_workload(engine, ref.requests))


def test_a_vllm_status_minivllm_lacks_is_not_recorded_and_is_reported_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from vllm.v1.request import RequestStatus as VllmStatus

    with caplog.at_level(logging.WARNING, logger="lifecycle_trace.vllm"):
        assert _status(VllmStatus.FINISHED_ERROR) is None
        assert _status(VllmStatus.FINISHED_ERROR) is None
        assert _status(VllmStatus.RUNNING) == RequestStatus.RUNNING
    assert caplog.text.count("FINISHED_ERROR") == 1
