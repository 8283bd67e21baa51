"""The tracer: the log it writes from inside vLLM tells, step by step, what vLLM did."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import types
from pathlib import Path
from typing import Any

import pytest

from helpers.vllm import NAMES
from helpers.vllm import expected
from helpers.vllm import reference
from helpers.vllm import skip_without_vllm

skip_without_vllm()

from lifecycle_trace.fold.timeline import TimelineBuilder  # noqa: E402
from lifecycle_trace.reader import iter_jsonl  # noqa: E402
from lifecycle_trace.testing import FakeClock  # noqa: E402
from lifecycle_trace.vllm import LOG_ENV  # noqa: E402
from lifecycle_trace.vllm import AsyncTracingScheduler  # noqa: E402
from lifecycle_trace.vllm import TracingScheduler  # noqa: E402
from lifecycle_trace.vllm import attach  # noqa: E402
from lifecycle_trace.vllm import tracer_of  # noqa: E402
from lifecycle_trace.vllm._tracer import _status  # noqa: E402
from lifecycle_trace.vllm.driver import VllmEngine  # noqa: E402
from lifecycle_trace.vllm.driver import build_scheduler  # noqa: E402
from lifecycle_trace.vllm.driver import run_workload  # noqa: E402
from lifecycle_trace.vllm.driver import workload_script  # noqa: E402
from minivllm.events import BlocksFreed  # noqa: E402
from minivllm.events import CounterUpdated  # noqa: E402
from minivllm.events import Event  # noqa: E402
from minivllm.events import StatusChanged  # noqa: E402
from minivllm.request import RequestStatus  # noqa: E402
from minivllm.workload import WorkloadRun  # noqa: E402


@pytest.mark.parametrize("name", NAMES)
def test_the_log_rebuilds_vllms_state_after_every_step(name: str) -> None:
    workload = reference(name)
    log: list[Event] = []
    records = list(run_workload(workload, observers=[log.append], clock=FakeClock()))
    assert [r.to_json(workload.trace_format) for r in records] == expected(name)
    builder = TimelineBuilder()
    builder.feed_all(log)
    timelines = builder.timelines()
    placeholders: dict[str, int] = {}
    events = iter(log)
    for record in records:
        # The placeholders as the log says at the end of this step.
        for e in events:
            if isinstance(e, CounterUpdated) and e.counter == "num_output_placeholders":
                placeholders[e.request_id] = e.new
            if type(e).__name__ == "StepFinished" and e.step == record.step:
                break
        for rid, state in record.reqs.items():
            sample = timelines[rid].state_at(record.step)
            assert sample is not None
            have = [
                sample.status.name,
                sample.num_computed_tokens,
                sample.num_tokens,
                sample.num_output_tokens,
                placeholders.get(rid, 0),
            ]
            assert have == state[:5], f"step {record.step} request {rid}"
    for rid, t in timelines.items():
        assert t.num_preemptions == records[-1].reqs[rid][5]


def test_a_prefix_cache_hit_is_recorded_as_cached_tokens() -> None:
    kwargs = {"max_model_len": 64, "block_size": 4, "num_gpu_blocks": 32}
    log: list[Event] = []
    engine = VllmEngine(observers=[log.append], enable_prefix_caching=True, **kwargs)
    engine.add_request([5] * 12, request_id="first")
    engine.step()
    engine.add_request([5] * 10 + [6], request_id="second")  # 2 full blocks in common
    while engine.has_unfinished_requests():
        engine.step()
    engine.shutdown()
    cached = [
        (e.request_id, e.new)
        for e in log
        if isinstance(e, CounterUpdated) and e.counter == "num_cached_tokens"
    ]
    assert cached == [("second", 8)]


def _scheduler(cls: type[Any] | None = None) -> Any:
    return build_scheduler(reference("a").engine_kwargs, scheduler_cls=cls)


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


def _run_with_class(name: str, cls: type[Any]) -> int:
    workload = reference(name)
    engine = VllmEngine(workload_script(workload), scheduler_cls=cls, **workload.engine_kwargs)
    assert isinstance(engine.scheduler, cls)
    run = WorkloadRun(engine, workload)  # type: ignore[arg-type]
    steps = sum(1 for _ in run)
    engine.shutdown()
    return steps


def _finished(path: Path) -> dict[str, RequestStatus]:
    return {
        e.request_id: e.new_status
        for e in iter_jsonl(path)
        if isinstance(e, StatusChanged) and e.new_status > RequestStatus.PREEMPTED
    }


def test_a_tracing_scheduler_class_writes_the_log_named_by_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(LOG_ENV, str(tmp_path / "trace-{pid}.jsonl"))
    assert _run_with_class("d", TracingScheduler) == len(expected("d"))
    [path] = tmp_path.glob("trace-*.jsonl")
    assert path.name.removeprefix("trace-").removesuffix(".jsonl").isdigit()
    assert sorted(_finished(path)) == sorted(r.id for r in reference("d").requests)


def test_the_async_tracing_scheduler_writes_the_async_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(LOG_ENV, str(tmp_path / "async.jsonl"))
    _run_with_class("e_async", AsyncTracingScheduler)
    assert _finished(tmp_path / "async.jsonl") == {
        "r0": RequestStatus.FINISHED_LENGTH_CAPPED,
        "r1": RequestStatus.FINISHED_STOPPED,
    }


def test_a_tracing_scheduler_without_the_environment_variable_says_what_is_missing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(LOG_ENV, raising=False)
    with pytest.raises(ValueError, match=LOG_ENV):
        _scheduler(TracingScheduler)


def _broken(request: Any) -> None:
    raise RuntimeError("a bug in the tracer")


def test_a_failing_hook_switches_tracing_off_and_vllm_runs_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    workload = reference("a")
    engine = VllmEngine(**workload.engine_kwargs)
    log: list[Event] = []
    attach(engine.scheduler, [log.append])
    tracer = tracer_of(engine.scheduler)
    assert tracer is not None and not tracer.strict
    tracer.after_tokens = _broken  # type: ignore[method-assign]
    with caplog.at_level(logging.ERROR, logger="lifecycle_trace.vllm"):
        steps = sum(1 for _ in WorkloadRun(engine, workload))  # type: ignore[arg-type]
    assert steps == len(expected("a"))  # vLLM finished the workload
    assert tracer_of(engine.scheduler) is None
    assert "lifecycle tracing failed" in caplog.text
    assert log  # what was traced before the failure is kept
    # Nothing after it: r0's blocks are freed when it finishes, after the failure.
    assert not any(isinstance(e, BlocksFreed) for e in log)


def test_a_failing_hook_raises_when_strict() -> None:
    workload = reference("a")
    engine = VllmEngine(observers=[lambda e: None], **workload.engine_kwargs)
    tracer = tracer_of(engine.scheduler)
    assert tracer is not None and tracer.strict
    tracer.after_tokens = _broken  # type: ignore[method-assign]
    with pytest.raises(RuntimeError, match="a bug in the tracer"):
        for _ in WorkloadRun(engine, workload):  # type: ignore[arg-type]
            pass


def test_vllm_statuses_map_by_name_and_an_unknown_one_is_reported_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from vllm.v1.request import RequestStatus as VllmStatus

    for status in VllmStatus:  # vLLM 0.22.1's statuses all have a namesake
        assert _status(status) == RequestStatus[status.name]
    newer = types.SimpleNamespace(name="FINISHED_BY_A_NEWER_VLLM")
    with caplog.at_level(logging.WARNING, logger="lifecycle_trace.vllm"):
        assert _status(newer) is None
        assert _status(newer) is None
    assert caplog.text.count("FINISHED_BY_A_NEWER_VLLM") == 1


_SET_ORDER = "print(','.join(set(f'r{i}' for i in range(6))))"


def test_requests_aborted_in_one_call_finish_in_set_order_which_follows_the_hash_seed() -> None:
    # vLLM's finish_requests iterates set(request_ids): the order of the
    # StatusChanged and BlocksFreed events, and of the blocks going back to
    # the free queue, is the set's, and that depends on PYTHONHASHSEED.
    log: list[Event] = []
    engine = VllmEngine(observers=[log.append], max_model_len=32, block_size=4, num_gpu_blocks=64)
    ids = [f"r{i}" for i in range(6)]
    for rid in ids:
        engine.add_request([7] * 4, request_id=rid)
    engine.abort_request(ids)
    engine.shutdown()
    aborted = [e.request_id for e in log if isinstance(e, StatusChanged)]
    assert aborted == list(set(ids))
    orders = {
        subprocess.run(
            [sys.executable, "-c", _SET_ORDER],
            env={**os.environ, "PYTHONHASHSEED": seed},
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        for seed in ("0", "1", "2")
    }
    assert len(orders) > 1  # another hash seed, another order
