"""Timelines rebuilt from events agree with what vLLM 0.22.1 did, and with the engine itself."""

from __future__ import annotations

import json

import attrs
import pytest
from hypothesis import given
from hypothesis import settings

from helpers.trace import DATA
from helpers.trace import REFERENCE_NAMES
from helpers.trace import reference
from helpers.trace import run_logged
from helpers.trace import workloads
from lifecycle_trace.eventlog import EventLog
from lifecycle_trace.fold.timeline import Sample
from lifecycle_trace.fold.timeline import Segment
from lifecycle_trace.fold.timeline import TimelineBuilder
from lifecycle_trace.fold.timeline import build_timelines
from lifecycle_trace.testing.scenario import FakeClock
from minivllm.engine.llm_engine import LLMEngine
from minivllm.events import CounterUpdated
from minivllm.events import RequestAdded
from minivllm.events import StatusChanged
from minivllm.request import RequestStatus as S
from minivllm.sampling_params import SamplingParams
from minivllm.workload import Workload
from minivllm.workload import WorkloadRequest
from minivllm.workload import run_workload

R, P, W, L = S.RUNNING, S.PREEMPTED, S.WAITING, S.FINISHED_LENGTH_CAPPED


@pytest.mark.parametrize("name", REFERENCE_NAMES)
def test_state_at_every_step_matches_the_reference_run(name: str) -> None:
    log, _ = run_logged(reference(name))
    timelines = build_timelines(log)
    lines = (DATA / f"{name}.expected.jsonl").read_text().splitlines()
    for line in lines:
        want = json.loads(line)
        for rid, (status, computed, tokens, outputs) in want["reqs"].items():
            got = timelines[rid].state_at(want["step"])
            assert got == Sample(want["step"], S[status], computed, tokens, outputs), (rid, want)


def test_example_a_single_request() -> None:
    # P=12, M=5: prefill at step 0, then one token per step, finished at step 4 (c=16 t=17).
    (t,) = build_timelines(run_logged(reference("a"))[0]).values()
    assert t.prefill_step == 0
    assert t.decode_growth == (1, 1, 1, 1)
    assert t.segments == (Segment(R, 0, 3), Segment(L, 4, 4))
    assert t.status_sequence == (W, R, L)
    assert (t.num_computed_tokens, t.num_tokens, t.num_output_tokens) == (16, 17, 5)
    assert t.finish_reason == "length" and t.finished_step == 4
    assert [s.num_computed_tokens for s in t.samples] == [12, 13, 14, 15, 16]


def test_example_b_chunked_prefill() -> None:
    # P=600, budget 256: chunks 256, 256, 88; the first token comes with the last chunk.
    (t,) = build_timelines(run_logged(reference("b"))[0]).values()
    assert t.chunk_sizes == (256, 256, 88)
    assert t.prefill_step == 2
    assert t.decode_growth == (1, 1)
    assert t.state_at(1) == Sample(1, R, 512, 600, 0)


def test_example_c_preemption() -> None:
    # r1 is preempted at step 9, waits until r0 finishes at step 39, resumes at 40, ends at 70.
    timelines = build_timelines(run_logged(reference("c"))[0])
    r1 = timelines["r1"]
    assert r1.segments == (
        Segment(R, 0, 8),
        Segment(P, 9, 39),
        Segment(R, 40, 69),
        Segment(L, 70, 70),
    )
    assert r1.status_sequence == (W, R, P, R, L)
    assert r1.num_preemptions == 1 and timelines["r0"].num_preemptions == 0
    assert r1.state_at(9) == Sample(9, P, 0, 49, 9)
    assert r1.state_at(40) == Sample(40, R, 49, 50, 10)
    growth = r1.decode_growth
    assert growth[8] == -48 and growth[39] == 49  # reset to 0 at step 9, recompute at step 40


def test_preemption_in_the_middle_of_a_chunked_prefill_restarts_the_chunks() -> None:
    # Found by search: r1 is preempted at step 6 with 11 of its 14 prompt tokens computed.
    kwargs = {
        "max_num_seqs": 4,
        "max_num_batched_tokens": 6,
        "block_size": 4,
        "num_gpu_blocks": 11,
        "max_model_len": 34,
    }
    requests = [
        WorkloadRequest(f"r{i}", [100 + i] * p, SamplingParams(max_tokens=m), arrival=a)
        for i, (p, m, a) in enumerate([(23, 9, 0), (14, 12, 1), (18, 9, 1)])
    ]
    r1 = build_timelines(run_logged(Workload(kwargs, requests))[0])["r1"]
    preempted = next(s for s in r1.segments if s.status == P)
    before = r1.state_at(preempted.first_step - 1)
    assert before is not None and 0 < before.num_computed_tokens < 14
    assert r1.prefill_step is not None and r1.prefill_step > preempted.last_step
    assert sum(r1.chunk_sizes) == 14 and all(c > 0 for c in r1.chunk_sizes)


def test_state_at_outside_the_request_life() -> None:
    timelines = build_timelines(run_logged(reference("d"))[0])
    r6 = timelines["r6"]  # arrives before step 3, finishes at step 12
    assert r6.state_at(2) is None
    assert r6.state_at(100) == attrs.evolve(r6.state_at(12), step=100)
    assert r6.state_at(100) is not None and r6.state_at(100).status == L


def test_state_past_the_end_of_a_log_that_stops_early() -> None:
    log, _ = run_logged(reference("c"))
    cut = [e for e in log if e.step <= 20]
    r1 = build_timelines(cut)["r1"]
    assert r1.last_step == 20 and not r1.finished
    with pytest.raises(ValueError, match="past the end of the log"):
        r1.state_at(21)


def test_latency_intervals_follow_vllm_definitions() -> None:
    engine = LLMEngine(max_num_seqs=1, clock=FakeClock())
    log = EventLog()
    engine.bus.subscribe(log)
    engine.add_request("first one", SamplingParams(max_tokens=4))
    engine.add_request("second", SamplingParams(max_tokens=1))
    while engine.has_unfinished_requests():
        engine.step()
    timelines = build_timelines(log)

    def ts(kind: type, rid: str, pick: int, **match: object) -> int:
        found = [
            e.ts_ns
            for e in log
            if type(e) is kind
            and getattr(e, "request_id", None) == rid
            and all(getattr(e, k) == v for k, v in match.items())
        ]
        return found[pick]

    for rid, t in timelines.items():
        arrival = ts(RequestAdded, rid, 0)
        scheduled = ts(StatusChanged, rid, 0, new_status=R)
        first_token = ts(CounterUpdated, rid, 0, counter="num_tokens")
        last_token = ts(CounterUpdated, rid, -1, counter="num_tokens")
        finished = ts(StatusChanged, rid, -1)
        assert t.queue_time_ns == scheduled - arrival
        assert t.prefill_time_ns == first_token - scheduled
        assert t.decode_time_ns == last_token - first_token
        assert t.e2e_time_ns == finished - arrival
        assert t.ttft_ns == first_token - arrival
    first, second = timelines.values()
    assert first.tpot_ns == first.decode_time_ns / 3
    assert second.tpot_ns is None  # one output token: no inter-token interval
    assert second.queue_time_ns > first.queue_time_ns  # it waited for the only seat


@settings(max_examples=40, deadline=None)
@given(workloads(modes=True))
def test_samples_equal_the_engine_state_after_every_step(workload: Workload) -> None:
    log, records = run_logged(workload)
    timelines = build_timelines(log)
    for record in records:
        for rid, (status, computed, tokens, outputs, placeholders, _) in record.reqs.items():
            got = timelines[rid].state_at(record.step)
            assert got == Sample(record.step, S[status], computed, tokens, outputs, placeholders)
    for t in timelines.values():
        samples = t.samples
        assert [s.step for s in samples] == list(range(t.added_step, t.last_step + 1))
        assert all(t.state_at(s.step) == s for s in samples)
        covered = [step for seg in t.segments for step in range(seg.first_step, seg.last_step + 1)]
        assert covered == [s.step for s in samples]
        assert t.num_preemptions == sum(1 for x in t.status_sequence if x == P)
        assert (t.first_running_step is None) == (R not in t.status_sequence)
        if t.prefill_step is not None:
            assert all(c > 0 for c in t.chunk_sizes)
            assert sum(t.chunk_sizes) == t.num_prompt_tokens
            # The prefill step samples a token, or (async) leaves a batch in flight that will.
            done = t.state_at(t.prefill_step)
            assert done is not None
            assert done.num_output_tokens + done.num_output_placeholders >= 1


@settings(max_examples=15, deadline=None)
@given(workloads(modes=True))
def test_live_builder_snapshots_equal_the_batch_fold(workload: Workload) -> None:
    builder = TimelineBuilder()
    snapshots = []
    log = EventLog()

    def attach(engine: LLMEngine) -> None:
        engine.bus.subscribe(log)
        engine.bus.subscribe(builder)

    for _ in run_workload(workload, on_engine=attach):
        snapshots.append((len(log), builder.timelines()))
    for n, snapshot in snapshots:
        assert snapshot == build_timelines(log[:n])
    assert builder.timelines() == build_timelines(log)


def test_events_for_an_unknown_request_are_refused() -> None:
    log, _ = run_logged(reference("a"))
    without_add = [e for e in log if type(e) is not RequestAdded]
    with pytest.raises(ValueError, match="never added"):
        build_timelines(without_add)


def test_a_request_id_added_again_while_live_is_refused() -> None:
    log, _ = run_logged(reference("a"))
    events = list(log)
    i, added = next((i, e) for i, e in enumerate(events) if type(e) is RequestAdded)
    with pytest.raises(ValueError, match="added a second time"):
        build_timelines([*events[: i + 1], added, *events[i + 1 :]])


def test_a_request_id_reused_after_it_finished_is_a_second_life() -> None:
    log, _ = run_logged(reference("a"))
    added = next(e for e in log if type(e) is RequestAdded)
    timelines = build_timelines([*log, added])
    rid = added.request_id
    assert f"{rid}#2" in timelines and timelines[f"{rid}#2"].request_id == rid
    assert timelines[rid].finished and not timelines[f"{rid}#2"].finished


def test_non_events_are_refused() -> None:
    with pytest.raises(TypeError, match="not an engine event"):
        build_timelines([object()])  # type: ignore[list-item]
