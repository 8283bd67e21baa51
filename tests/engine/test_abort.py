"""Abort of waiting, running and preempted requests."""

from __future__ import annotations

from helpers.engine import assert_no_leak
from helpers.engine import make_engine
from helpers.engine import run_to_end
from minivllm import RequestStatus
from minivllm import SamplingParams
from minivllm.events import StatusChanged


def statuses(engine) -> list[StatusChanged]:
    seen: list[StatusChanged] = []
    engine.bus.subscribe(seen.append, StatusChanged)
    return seen


def test_abort_waiting_request() -> None:
    engine = make_engine()
    seen = statuses(engine)
    engine.add_request([1, 2], request_id="w")
    engine.abort_request("w")
    assert not engine.has_unfinished_requests()
    assert [(e.old_status, e.new_status) for e in seen] == [
        (RequestStatus.WAITING, RequestStatus.FINISHED_ABORTED)
    ]
    assert_no_leak(engine)


def test_abort_running_request_frees_its_blocks() -> None:
    engine = make_engine()
    engine.add_request([1] * 40, SamplingParams(max_tokens=10), request_id="r")
    engine.add_request([2] * 5, SamplingParams(max_tokens=3), request_id="other")
    engine.step()
    pool = engine.scheduler.kv_cache_manager.block_pool
    free_before = pool.get_num_free_blocks()
    engine.abort_request(["r"])
    assert pool.get_num_free_blocks() == free_before + 3
    assert [r.request_id for r in engine.scheduler.running] == ["other"]
    final = run_to_end(engine)
    assert set(final) == {"other"}
    assert_no_leak(engine)


def test_abort_preempted_request() -> None:
    engine = make_engine(block_size=4, num_gpu_blocks=5, max_model_len=16, max_num_seqs=4)
    engine.add_request([1] * 6, SamplingParams(max_tokens=6), request_id="a")
    engine.add_request([2] * 6, SamplingParams(max_tokens=6), request_id="b")
    for _ in range(4):
        engine.step()
    assert engine.scheduler.requests["b"].status is RequestStatus.PREEMPTED
    seen = statuses(engine)
    engine.abort_request("b")
    assert [(e.old_status, e.new_status) for e in seen] == [
        (RequestStatus.PREEMPTED, RequestStatus.FINISHED_ABORTED)
    ]
    assert len(engine.scheduler.waiting) == 0
    run_to_end(engine)
    assert_no_leak(engine)


def test_abort_unknown_or_finished_id_is_a_no_op() -> None:
    engine = make_engine()
    engine.add_request([1], SamplingParams(max_tokens=1), request_id="done")
    run_to_end(engine)
    seen = statuses(engine)
    engine.abort_request(["nope", "done"])
    assert seen == []


def test_aborted_id_can_be_reused() -> None:
    engine = make_engine()
    engine.add_request([1], request_id="x")
    engine.abort_request("x")
    engine.add_request([1], SamplingParams(max_tokens=2), request_id="x")
    assert run_to_end(engine)["x"].finish_reason == "length"
