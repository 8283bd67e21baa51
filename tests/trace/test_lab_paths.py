"""The lab's polling trace and the trace derived from bus events alone are the same list."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

from helpers.trace import REFERENCE_NAMES
from helpers.trace import REFERENCE_V2_NAMES
from helpers.trace import engine_kwargs
from helpers.trace import reference
from helpers.trace import reference_v2
from helpers.trace import workloads
from lifecycle_trace.eventlog import EventLog
from lifecycle_trace.lab import trace_from_events
from lifecycle_trace.lab import trace_request
from lifecycle_trace.lab import trace_requests
from lifecycle_trace.lab import trace_workload
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


@pytest.mark.parametrize("name", REFERENCE_V2_NAMES)
def test_paths_agree_on_the_async_and_priority_reference_runs(name: str) -> None:
    workload = reference_v2(name)
    polled, derived = _both(
        lambda attach: trace_workload(workload, workload.model(), on_engine=attach)
    )
    assert polled == derived
    placeholders = {e.num_output_placeholders for e in polled}
    assert placeholders == ({0, 1} if workload.engine_kwargs["async_scheduling"] else {0})


@settings(max_examples=60, deadline=None)
@given(workloads(modes=True))
def test_paths_agree_on_random_workloads(workload: Workload) -> None:
    polled, derived = _both(lambda attach: trace_workload(workload, on_engine=attach))
    assert polled == derived


@settings(max_examples=30, deadline=None)
@given(
    engine_kwargs(),
    st.lists(st.integers(1, 6), min_size=1, max_size=4),
    st.integers(1, 10),
    st.booleans(),
    st.sampled_from(["fcfs", "priority"]),
    st.data(),
)
def test_paths_agree_for_several_prompts(
    kwargs: dict[str, object],
    sizes: list[int],
    max_tokens: int,
    async_scheduling: bool,
    policy: str,
    data: st.DataObject,
) -> None:
    kwargs = {**kwargs, "async_scheduling": async_scheduling, "policy": policy}
    max_len = int(kwargs["max_model_len"])  # type: ignore[call-overload]
    prompts = [[65 + i] * min(size * 4, max_len - 1) for i, size in enumerate(sizes)]
    params = SamplingParams(max_tokens=max_tokens)
    n = len(prompts)
    priorities = data.draw(st.lists(st.integers(0, 2), min_size=n, max_size=n))
    polled, derived = _both(
        lambda attach: trace_requests(
            kwargs, prompts, params, on_engine=attach, priorities=priorities
        )
    )
    assert polled == derived
    ids = {e.request_id for e in polled}
    assert ids == {str(i) for i in range(len(prompts))}
    single = trace_request(kwargs, prompts[0], params)
    assert single[-1].status.startswith("FINISHED")


def test_per_prompt_params_must_match_the_prompts() -> None:
    with pytest.raises(ValueError, match="got 1 for 2 prompts"):
        trace_requests({}, ["a", "b"], [SamplingParams()])
    with pytest.raises(ValueError, match="priorities: got 1 for 2 prompts"):
        trace_requests({}, ["a", "b"], SamplingParams(), priorities=[0])


def test_the_priority_policy_admits_the_more_urgent_prompt_first() -> None:
    # One seat: the prompt added second but with priority 0 runs first.
    params = SamplingParams(max_tokens=2, ignore_eos=True)
    kwargs = {"max_num_seqs": 1, "policy": "priority"}
    trace = trace_requests(kwargs, ["low", "high"], params, priorities=[1, 0])
    assert [(e.request_id, e.status) for e in trace[:2]] == [("1", "RUNNING"), ("0", "WAITING")]
    fcfs = trace_requests({"max_num_seqs": 1}, ["low", "high"], params, priorities=[1, 0])
    assert [(e.request_id, e.status) for e in fcfs[:2]] == [("0", "RUNNING"), ("1", "WAITING")]


def test_a_log_that_starts_mid_run_is_refused() -> None:
    log = EventLog()
    trace_workload(reference("a"), on_engine=lambda engine: engine.bus.subscribe(log))
    with pytest.raises(ValueError, match="never added"):
        trace_from_events(log[3:])
