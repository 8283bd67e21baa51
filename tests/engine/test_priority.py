"""The priority policy: admission order, the victim of a preemption, unscheduling it."""

from __future__ import annotations

import pytest

from helpers.engine import assert_no_leak
from helpers.engine import make_engine
from helpers.engine import run_to_end
from minivllm import LLMEngine
from minivllm import SamplingParams
from minivllm.core.sched.request_queue import FCFSRequestQueue
from minivllm.core.sched.request_queue import PriorityRequestQueue
from minivllm.core.sched.request_queue import SchedulingPolicy
from minivllm.core.sched.request_queue import create_request_queue
from minivllm.events import StatusChanged
from minivllm.events import StepFinished
from minivllm.request import Request
from minivllm.request import RequestStatus


def admission_order(engine: LLMEngine) -> list[str]:
    """Subscribe; the ids in the order they first become RUNNING."""
    order: list[str] = []

    def on_status(e: StatusChanged) -> None:
        if e.new_status == RequestStatus.RUNNING and e.request_id not in order:
            order.append(e.request_id)

    engine.bus.subscribe(on_status, StatusChanged)
    return order


def test_lower_priority_value_runs_first_then_earlier_arrival() -> None:
    engine = make_engine(policy="priority", max_num_seqs=1, max_num_batched_tokens=16)
    order = admission_order(engine)
    for rid, priority in [("a", 2), ("b", 0), ("c", 1), ("d", 0)]:
        engine.add_request([1] * 4, SamplingParams(max_tokens=2), request_id=rid, priority=priority)
    run_to_end(engine)
    assert order == ["b", "d", "c", "a"]


def test_fcfs_ignores_priority() -> None:
    engine = make_engine(max_num_seqs=1, max_num_batched_tokens=16)
    order = admission_order(engine)
    for rid, priority in [("a", 2), ("b", 0), ("c", 1)]:
        engine.add_request([1] * 4, SamplingParams(max_tokens=2), request_id=rid, priority=priority)
    run_to_end(engine)
    assert order == ["a", "b", "c"]


def test_arrival_time_breaks_priority_ties() -> None:
    engine = make_engine(policy="priority", max_num_seqs=1, max_num_batched_tokens=16)
    order = admission_order(engine)
    engine.add_request([1] * 4, request_id="late", arrival_time=20.0)
    engine.add_request([1] * 4, request_id="early", arrival_time=10.0)
    run_to_end(engine)
    assert order == ["early", "late"]


def _x_then_y(engine: LLMEngine, params: SamplingParams) -> list[StepFinished]:
    """Queue x (priority 9), step, queue y (priority 0); return the list of steps, kept filling."""
    steps: list[StepFinished] = []
    engine.bus.subscribe(steps.append, StepFinished)
    engine.add_request([1] * 4, params, request_id="x", priority=9)
    engine.step()
    engine.add_request([2] * 6, params, request_id="y", priority=0)
    return steps


def _tight(policy: str) -> tuple[LLMEngine, list[StepFinished]]:
    """x (priority 9) arrives first, y (priority 0) one step later; 4 blocks of 4 tokens."""
    engine = make_engine(policy=policy, block_size=4, num_gpu_blocks=5, max_model_len=16)
    steps = _x_then_y(engine, SamplingParams(max_tokens=8))
    for _ in range(4):
        engine.step()
    return engine, steps


def test_priority_victim_is_unscheduled_when_it_was_already_scheduled() -> None:
    # Step 4: x (scheduled first, 7 -> 8 tokens fits its 2 blocks) is scheduled;
    # then y needs a third block. The victim is max(priority, arrival) = x, which
    # is taken out of the batch again, and y gets its freed blocks.
    engine, steps = _tight("priority")
    assert dict(steps[4].num_scheduled_tokens) == {"y": 1}
    assert steps[4].preempted_req_ids == ("x",)
    x = engine.scheduler.requests["x"]
    assert (x.status, x.num_computed_tokens, x.num_preemptions) == (RequestStatus.PREEMPTED, 0, 1)
    run_to_end(engine)
    assert_no_leak(engine)


def test_fcfs_victim_is_the_last_running_request() -> None:
    _, steps = _tight("fcfs")
    assert dict(steps[4].num_scheduled_tokens) == {"x": 1}
    assert steps[4].preempted_req_ids == ("y",)


def test_unscheduling_a_victim_does_not_skip_the_next_running_request() -> None:
    # As _tight, plus z (priority 0), admitted with y: after x leaves the running
    # list, the loop index steps back so that z is still scheduled this step.
    engine = make_engine(
        policy="priority", block_size=4, num_gpu_blocks=7, max_model_len=24, max_num_seqs=3
    )
    params = SamplingParams(max_tokens=12)
    steps = _x_then_y(engine, params)
    engine.add_request([3] * 4, params, request_id="z", priority=0)
    while not steps[-1].preempted_req_ids:
        engine.step()
    assert steps[-1].preempted_req_ids == ("x",)
    assert set(steps[-1].num_scheduled_tokens) == {"y", "z"}


def test_preempted_request_rejoins_the_queue_by_priority() -> None:
    queue = PriorityRequestQueue()
    requests = [_request(rid, p, t) for rid, p, t in [("a", 1, 1.0), ("b", 0, 2.0), ("c", 1, 0.5)]]
    for r in requests:
        queue.add_request(r)
    queue.prepend_request(_request("d", 0, 3.0))  # no front in a heap: by (priority, arrival)
    assert [r.request_id for r in queue] == ["b", "d", "c", "a"]
    assert queue.peek_request().request_id == "b"
    queue.remove_requests([requests[1]])
    assert [queue.pop_request().request_id for _ in range(len(queue))] == ["d", "c", "a"]
    with pytest.raises(IndexError):
        queue.peek_request()


def test_fcfs_queue_prepends_to_the_front() -> None:
    queue = create_request_queue(SchedulingPolicy.FCFS)
    assert isinstance(queue, FCFSRequestQueue)
    queue.add_request(_request("a", 5, 1.0))
    queue.prepend_request(_request("b", 0, 2.0))
    assert [r.request_id for r in queue] == ["b", "a"]


def test_unknown_policy_is_refused() -> None:
    with pytest.raises(ValueError, match="policy must be one of"):
        LLMEngine(policy="lifo")


@pytest.mark.parametrize("priority", [1.5, True, "0"])
def test_priority_must_be_an_integer(priority: object) -> None:
    engine = make_engine(policy="priority")
    with pytest.raises(ValueError, match="priority must be an integer"):
        engine.add_request([1, 2], priority=priority)  # type: ignore[arg-type]
    assert not engine.has_unfinished_requests()


def _request(request_id: str, priority: int, arrival_time: float) -> Request:
    return Request(request_id, [1, 2], SamplingParams(), 16, None, arrival_time, priority=priority)
