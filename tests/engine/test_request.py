"""RequestStatus in vLLM 0.22.1's order, the request's counters, the scheduler's contract."""

from __future__ import annotations

import inspect

import pytest

from helpers.engine import make_engine
from minivllm import AsyncScheduler
from minivllm import RequestStatus
from minivllm import SamplingParams
from minivllm import Scheduler
from minivllm import SchedulerInterface
from minivllm.request import Request

VLLM_0_22_1_ORDER = [
    "WAITING",
    "WAITING_FOR_STRUCTURED_OUTPUT_GRAMMAR",
    "WAITING_FOR_REMOTE_KVS",
    "WAITING_FOR_STREAMING_REQ",
    "RUNNING",
    "PREEMPTED",
    "FINISHED_STOPPED",
    "FINISHED_LENGTH_CAPPED",
    "FINISHED_ABORTED",
    "FINISHED_IGNORED",
    "FINISHED_ERROR",
    "FINISHED_REPETITION",
]


def test_statuses_are_vllms_in_vllms_order() -> None:
    assert [s.name for s in sorted(RequestStatus)] == VLLM_0_22_1_ORDER
    assert [s.value for s in RequestStatus] == list(range(1, len(VLLM_0_22_1_ORDER) + 1))


@pytest.mark.parametrize("status", list(RequestStatus), ids=lambda s: s.name)
def test_finished_means_after_preempted(status: RequestStatus) -> None:
    assert RequestStatus.is_finished(status) == status.name.startswith("FINISHED_")


@pytest.mark.parametrize(
    ("status", "reason"),
    [
        (RequestStatus.FINISHED_STOPPED, "stop"),
        (RequestStatus.FINISHED_LENGTH_CAPPED, "length"),
        (RequestStatus.FINISHED_ABORTED, "abort"),
        (RequestStatus.FINISHED_IGNORED, "length"),
        (RequestStatus.FINISHED_ERROR, "error"),
        (RequestStatus.FINISHED_REPETITION, "repetition"),
        (RequestStatus.WAITING_FOR_STREAMING_REQ, "stop"),
        (RequestStatus.RUNNING, None),
    ],
)
def test_finish_reasons(status: RequestStatus, reason: str | None) -> None:
    assert RequestStatus.get_finished_reason(status) == reason


def test_num_tokens_is_kept_up_to_date() -> None:
    engine = make_engine()
    engine.add_request([1] * 5, SamplingParams(max_tokens=4), request_id="r")
    request = engine.scheduler.requests["r"]
    for _ in range(3):
        engine.step()
        assert request.num_tokens == len(request.all_token_ids)
    assert request.num_tokens == 8
    request.append_output_token_ids(7)
    assert request.num_tokens == len(request.all_token_ids) == 9


def test_requests_order_by_priority_then_arrival_then_id() -> None:
    def request(request_id: str, priority: int, arrival_time: float) -> Request:
        return Request(request_id, [1], SamplingParams(), 4, None, arrival_time, priority=priority)

    a, b, c, d = (
        request("a", 1, 5.0),
        request("b", 0, 9.0),
        request("c", 1, 2.0),
        request("d", 1, 2.0),
    )
    assert sorted([a, b, c, d]) == [b, c, d, a]


def test_the_schedulers_implement_vllms_interface() -> None:
    assert issubclass(Scheduler, SchedulerInterface)
    assert issubclass(AsyncScheduler, Scheduler)
    abstract = {
        name
        for name, member in inspect.getmembers(SchedulerInterface)
        if getattr(member, "__isabstractmethod__", False)
    }
    assert abstract == {
        "schedule",
        "update_from_output",
        "add_request",
        "finish_requests",
        "get_num_unfinished_requests",
        "has_finished_requests",
        "get_request_counts",
    }
    with pytest.raises(TypeError):
        SchedulerInterface()  # type: ignore[abstract]
    engine = make_engine(async_scheduling=True)
    assert type(engine.scheduler) is AsyncScheduler
    assert not engine.scheduler.has_requests()
