"""Scheduling behaviour, derived by hand from vLLM 0.22.1's rules."""

from __future__ import annotations

from helpers.engine import assert_no_leak
from helpers.engine import engine_config
from helpers.engine import make_engine
from helpers.engine import run_to_end
from helpers.engine import snapshot
from minivllm import RequestStatus
from minivllm import SamplingParams
from minivllm.events import StepFinished


def scheduled_per_step(engine, steps: int) -> list[dict[str, int]]:
    seen: list[StepFinished] = []
    with engine.bus.subscribe(seen.append, StepFinished):
        for _ in range(steps):
            engine.step()
    return [dict(e.num_scheduled_tokens) for e in seen]


def test_counters_follow_the_reference_table() -> None:
    engine = make_engine()
    rid = engine.add_request([1] * 12, SamplingParams(max_tokens=3))
    assert snapshot(engine, rid) == ("WAITING", 0, 12, 0)
    engine.step()
    assert snapshot(engine, rid) == ("RUNNING", 12, 13, 1)
    engine.step()
    assert snapshot(engine, rid) == ("RUNNING", 13, 14, 2)
    (out,) = engine.step()
    assert out.finished and out.finish_reason == "length"
    assert out.outputs[0].token_ids == [7, 7, 7]
    assert_no_leak(engine)


def test_long_prefill_token_threshold_caps_each_chunk() -> None:
    engine = make_engine(long_prefill_token_threshold=10)
    engine.add_request([1] * 25, SamplingParams(max_tokens=2), request_id="r")
    assert scheduled_per_step(engine, 4) == [{"r": 10}, {"r": 10}, {"r": 5}, {"r": 1}]


def test_chunked_prefill_off_waits_for_budget_instead_of_chunking() -> None:
    engine = make_engine(enable_chunked_prefill=False, max_num_batched_tokens=256, max_num_seqs=4)
    engine.add_request([1] * 200, SamplingParams(max_tokens=3), request_id="a")
    engine.add_request([2] * 100, SamplingParams(max_tokens=3), request_id="b")
    # 'b' does not fit the 56 tokens left after 'a', and is not chunked.
    steps = scheduled_per_step(engine, 2)
    assert steps == [{"a": 200}, {"a": 1, "b": 100}]


def test_chunked_prefill_on_fills_the_budget() -> None:
    engine = make_engine(max_num_batched_tokens=256, max_num_seqs=4)
    engine.add_request([1] * 200, SamplingParams(max_tokens=3), request_id="a")
    engine.add_request([2] * 100, SamplingParams(max_tokens=3), request_id="b")
    steps = scheduled_per_step(engine, 2)
    assert steps == [{"a": 200, "b": 56}, {"a": 1, "b": 44}]
    assert snapshot(engine, "b") == ("RUNNING", 100, 101, 1)


def test_max_num_seqs_limits_admission() -> None:
    engine = make_engine(max_num_seqs=2, max_num_batched_tokens=64)
    for i in range(3):
        engine.add_request([i + 1] * 4, SamplingParams(max_tokens=2), request_id=f"r{i}")
    steps = scheduled_per_step(engine, 3)
    assert steps == [{"r0": 4, "r1": 4}, {"r0": 1, "r1": 1}, {"r2": 4}]


def test_arrival_order_is_first_come_first_served() -> None:
    engine = make_engine(max_num_seqs=1, max_num_batched_tokens=64)
    for rid in ["z", "a", "m"]:
        engine.add_request([5] * 3, SamplingParams(max_tokens=1), request_id=rid)
    finished_order = []
    while engine.has_unfinished_requests():
        finished_order += [o.request_id for o in engine.step() if o.finished]
    assert finished_order == ["z", "a", "m"]


def test_preemption_resets_counters_and_resume_recomputes_prompt_plus_outputs() -> None:
    # 4 usable blocks of 4 tokens; two requests of 6 tokens each take 2 blocks.
    engine = make_engine(block_size=4, num_gpu_blocks=5, max_model_len=16, max_num_seqs=4)
    engine.add_request([1] * 6, SamplingParams(max_tokens=6), request_id="a")
    engine.add_request([2] * 6, SamplingParams(max_tokens=6), request_id="b")
    engine.step()  # both prefill: 6 computed each, 2 blocks each, pool full
    engine.step()  # 7 computed each
    engine.step()  # 8 computed each: still 2 blocks
    assert snapshot(engine, "b") == ("RUNNING", 8, 9, 3)
    seen: list[StepFinished] = []
    engine.bus.subscribe(seen.append, StepFinished)
    engine.step()  # 'a' needs a third block: the last running request, 'b', is preempted
    assert seen[-1].preempted_req_ids == ("b",)
    assert dict(seen[-1].num_scheduled_tokens) == {"a": 1}
    b = engine.scheduler.requests["b"]
    assert (b.status, b.num_computed_tokens, b.num_tokens, b.num_output_tokens) == (
        RequestStatus.PREEMPTED,
        0,
        9,
        3,
    )
    assert b.num_preemptions == 1
    assert engine.scheduler.waiting[0] is b
    run_to_end(engine)
    # Resumed 'b' recomputed its prompt plus its three outputs (9 tokens) in one chunk.
    resumed = [e.num_scheduled_tokens["b"] for e in seen if "b" in e.num_scheduled_tokens]
    assert resumed[0] == 9
    assert_no_leak(engine)


def test_no_admission_in_a_step_that_preempted() -> None:
    engine = make_engine(block_size=4, num_gpu_blocks=5, max_model_len=16, max_num_seqs=4)
    engine.add_request([1] * 6, SamplingParams(max_tokens=8), request_id="a")
    engine.add_request([2] * 6, SamplingParams(max_tokens=8), request_id="b")
    engine.step()
    engine.step()
    engine.step()
    engine.add_request([3], SamplingParams(max_tokens=1), request_id="tiny")
    seen: list[StepFinished] = []
    engine.bus.subscribe(seen.append, StepFinished)
    engine.step()
    assert seen[-1].preempted_req_ids == ("b",)
    # 'tiny' would fit in the blocks 'b' freed, but nothing is admitted this step.
    assert "tiny" not in seen[-1].num_scheduled_tokens
    assert engine.scheduler.requests["tiny"].status is RequestStatus.WAITING


def test_request_preempts_itself_when_it_is_the_last_one() -> None:
    engine = make_engine(block_size=4, num_gpu_blocks=3, max_model_len=8, max_num_seqs=2)
    engine.add_request([1] * 4, SamplingParams(max_tokens=4), request_id="a")
    engine.add_request([2] * 3, SamplingParams(max_tokens=4), request_id="b")
    engine.step()  # a: 1 block, b: 1 block
    seen: list[StepFinished] = []
    engine.bus.subscribe(seen.append, StepFinished)
    engine.step()  # a needs block 2 -> preempt b; b then fits nowhere this step
    assert seen[-1].preempted_req_ids == ("b",)
    run_to_end(engine)
    assert_no_leak(engine)


def test_full_sequence_must_fit_gate_blocks_admission() -> None:
    # 3 usable blocks of 4 tokens. After two steps 'a' holds 2 of them. 'b' (prompt 7)
    # could put its first 4-token chunk in the last free block, but the gate
    # (scheduler_reserve_full_isl) wants room for all 7 tokens (2 blocks) first.
    def run(reserve_full_isl: bool) -> tuple[str, int, int, int]:
        config = engine_config(4, 8, 4, 4, 12, long_prefill_token_threshold=4)
        engine = make_engine(config, scheduler_reserve_full_isl=reserve_full_isl)
        engine.add_request([1] * 5, SamplingParams(max_tokens=5), request_id="a")
        engine.step()
        engine.step()
        engine.add_request([2] * 7, SamplingParams(max_tokens=1), request_id="b")
        engine.step()
        return snapshot(engine, "b")

    assert run(True) == ("WAITING", 0, 7, 0)
    assert run(False) == ("RUNNING", 4, 7, 0)


def test_max_model_len_caps_length() -> None:
    engine = make_engine(max_model_len=20)
    engine.add_request([1] * 15, SamplingParams(max_tokens=100), request_id="r")
    out = run_to_end(engine)["r"]
    assert out.finish_reason == "length"
    assert len(out.outputs[0].token_ids) == 5  # 15 + 5 = max_model_len


def test_max_tokens_none_runs_to_max_model_len() -> None:
    engine = make_engine(max_model_len=20)
    engine.add_request([1] * 15, SamplingParams(max_tokens=None), request_id="r")
    assert len(run_to_end(engine)["r"].outputs[0].token_ids) == 5
