"""Timelines under async scheduling and the priority policy agree with vLLM 0.22.1's runs.

Every field of the reference runs' per-step state is rebuilt from events:
status, ``num_computed_tokens``, ``num_tokens``, ``num_output_tokens``,
``num_output_placeholders`` and, at the end, ``num_preemptions``.
"""

from __future__ import annotations

import json

import pytest

from helpers.trace import DATA_V2
from helpers.trace import REFERENCE_V2_NAMES
from helpers.trace import reference_v2
from helpers.trace import run_logged
from lifecycle_trace.fold.timeline import Sample
from lifecycle_trace.fold.timeline import build_timelines
from minivllm.request import RequestStatus as S
from minivllm.sampling_params import SamplingParams
from minivllm.workload import Workload
from minivllm.workload import WorkloadRequest


def _expected(name: str) -> list[dict[str, object]]:
    text = (DATA_V2 / f"{name}.expected.jsonl").read_text()
    return [json.loads(line) for line in text.splitlines()]


@pytest.mark.parametrize("name", REFERENCE_V2_NAMES)
def test_state_at_every_step_matches_the_reference_run(name: str) -> None:
    log, _ = run_logged(reference_v2(name))
    timelines = build_timelines(log)
    lines = _expected(name)
    for want in lines:
        step = want["step"]
        assert isinstance(step, int)
        for rid, state in want["reqs"].items():  # type: ignore[attr-defined]
            status, computed, tokens, outputs, placeholders, _ = state
            got = timelines[rid].state_at(step)
            assert got == Sample(step, S[status], computed, tokens, outputs, placeholders), (
                rid,
                want,
            )
    for rid, state in lines[-1]["reqs"].items():  # type: ignore[attr-defined]
        assert timelines[rid].num_preemptions == state[5]


def test_the_in_flight_batch_of_example_e() -> None:
    # r0: P=10, M=4, prefilled at step 0; its token lands one step later, every step.
    # r1: P=20 in chunks 6+14 (budget 16), EOS as its 2nd output at step 3.
    timelines = build_timelines(run_logged(reference_v2("e_async"))[0])
    r0, r1 = timelines["r0"], timelines["r1"]
    assert (r0.prefill_step, r0.first_token_step) == (0, 1)
    assert r0.in_flight_steps == (0, 1, 2, 3)  # step 4 scheduled nothing: max_tokens is near
    assert [s.num_computed_tokens - s.num_tokens for s in r0.samples] == [0, 0, 0, 0, -1]
    assert r0.decode_growth == (1, 1, 1, 0)
    assert r0.state_at(4) == Sample(4, S.FINISHED_LENGTH_CAPPED, 13, 14, 4, 0)
    # A prefill chunk samples nothing, so it gets no placeholder.
    assert r1.state_at(0) == Sample(0, S.RUNNING, 6, 20, 0, 0)
    assert r1.chunk_sizes == (6, 14)
    assert (r1.prefill_step, r1.first_token_step) == (1, 2)
    assert r1.in_flight_steps == (1, 2, 3)
    # It stopped with a batch still in flight: that token is never sampled.
    assert (r1.finish_reason, r1.num_output_placeholders) == ("stop", 1)


def test_a_request_preempted_with_a_batch_in_flight_still_gets_its_token() -> None:
    # Example g: r2 is preempted at step 4 while batch 3 (which sampled for it) is in flight.
    r2 = build_timelines(run_logged(reference_v2("g_async_preempt"))[0])["r2"]
    assert r2.state_at(3) == Sample(3, S.RUNNING, 6, 6, 1, 1)
    assert r2.state_at(4) == Sample(4, S.PREEMPTED, 0, 7, 2, 0)
    assert r2.in_flight_steps == (2, 3)
    assert r2.finish_reason == "abort"


def test_priority_is_kept_per_request() -> None:
    timelines = build_timelines(run_logged(reference_v2("f_priority"))[0])
    assert {rid: t.priority for rid, t in timelines.items()} == {"r0": 5, "r1": 1, "r2": 0}


@pytest.mark.parametrize("async_scheduling", [False, True])
def test_synchronous_timelines_have_no_batch_in_flight(async_scheduling: bool) -> None:
    kwargs = {"max_num_seqs": 2, "async_scheduling": async_scheduling}
    requests = [WorkloadRequest("a", [65] * 5, SamplingParams(max_tokens=3, ignore_eos=True))]
    (t,) = build_timelines(run_logged(Workload(kwargs, requests))[0]).values()
    if async_scheduling:
        assert t.in_flight_steps == (0, 1, 2)
        assert t.first_token_step == 1
    else:
        assert t.in_flight_steps == ()
        assert all(s.num_output_placeholders == 0 for s in t.samples)
        assert t.first_token_step == t.prefill_step == 0
