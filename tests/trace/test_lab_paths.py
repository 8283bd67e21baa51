"""The lab's polling trace and the trace derived from bus events alone are the same list."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from helpers.trace import REFERENCE_NAMES, engine_kwargs, reference, workloads
from lifecycle_trace.eventlog import EventLog
from lifecycle_trace.lab import trace_from_events, trace_request, trace_requests, trace_workload
from minivllm.engine.llm_engine import LLMEngine
from minivllm.sampling_params import SamplingParams
from minivllm.workload import Workload


def _both(run: object) -> tuple[list[object], list[object]]:
    logs: list[EventLog] = []

    def attach(engine: LLMEngine) -> None:
        logs.append(EventLog())
        engine.bus.subscribe(logs[-1])

    polled = run(attach)  # type: ignore[operator]
    return polled, trace_from_events(logs[0])


@pytest.mark.parametrize("name", REFERENCE_NAMES)
def test_paths_agree_on_the_reference_runs(name: str) -> None:
    polled, derived = _both(lambda attach: trace_workload(reference(name), on_engine=attach))
    assert polled == derived
    assert polled  # every reference run produces records


@settings(max_examples=60, deadline=None)
@given(workloads())
def test_paths_agree_on_random_workloads(workload: Workload) -> None:
    polled, derived = _both(lambda attach: trace_workload(workload, on_engine=attach))
    assert polled == derived


@settings(max_examples=30, deadline=None)
@given(
    engine_kwargs(),
    st.lists(st.integers(1, 6), min_size=1, max_size=4),
    st.integers(1, 10),
    st.data(),
)
def test_paths_agree_for_several_prompts(
    kwargs: dict[str, object], sizes: list[int], max_tokens: int, data: st.DataObject
) -> None:
    max_len = int(kwargs["max_model_len"])  # type: ignore[call-overload]
    prompts = [[65 + i] * min(size * 4, max_len - 1) for i, size in enumerate(sizes)]
    params = SamplingParams(max_tokens=max_tokens)
    polled, derived = _both(
        lambda attach: trace_requests(kwargs, prompts, params, on_engine=attach)
    )
    assert polled == derived
    ids = {e.request_id for e in polled}
    assert ids == {str(i) for i in range(len(prompts))}
    single = trace_request(kwargs, prompts[0], params)
    assert single[-1].status.startswith("FINISHED")


def test_per_prompt_params_must_match_the_prompts() -> None:
    with pytest.raises(ValueError, match="got 1 for 2 prompts"):
        trace_requests({}, ["a", "b"], [SamplingParams()])


def test_a_log_that_starts_mid_run_is_refused() -> None:
    log = EventLog()
    trace_workload(reference("a"), on_engine=lambda engine: engine.bus.subscribe(log))
    with pytest.raises(ValueError, match="never added"):
        trace_from_events(log[3:])
