"""Shared by the real-vLLM tests: the skip, the reference runs, an altered scheduler."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from lifecycle_trace.vllm import vllm_missing_reason
from minivllm.workload import Workload

REASON = vllm_missing_reason()

DATA = Path(__file__).parents[1] / "data"
V1_NAMES = ("a", "b", "c", "d")
V2_NAMES = ("e_async", "f_priority", "g_async_preempt", "h_async_priority")
NAMES = V1_NAMES + V2_NAMES


def skip_without_vllm() -> None:
    """Skip the calling test module, with the reason, when vLLM 0.22.1 cannot be used."""
    if REASON is not None:
        pytest.skip(REASON, allow_module_level=True)


def workload_path(name: str) -> Path:
    """The file of reference workload ``name`` (v1 or v2)."""
    folder = "vllm_examples_v2" if name in V2_NAMES else "vllm_examples"
    return DATA / folder / f"{name}.json"


def reference(name: str) -> Workload:
    """Reference workload ``name``."""
    return Workload.load(workload_path(name))


def expected(name: str) -> list[dict[str, Any]]:
    """What vLLM 0.22.1 did with reference workload ``name``, one line per step."""
    path = workload_path(name).with_suffix(".expected.jsonl")
    return [json.loads(line) for line in path.read_text().splitlines()]


def early_stop_scheduler() -> type[Any]:
    """vLLM's Scheduler with an off-by-one: a request is capped one token before max_tokens."""
    from vllm.v1.core.sched.scheduler import Scheduler
    from vllm.v1.request import RequestStatus

    class EarlyStopScheduler(Scheduler):  # type: ignore[misc]
        def _update_request_with_output(self, request: Any, new_token_ids: list[int]) -> Any:
            new_token_ids, stopped = super()._update_request_with_output(request, new_token_ids)
            if not stopped and request.num_output_tokens >= request.max_tokens - 1:
                request.status = RequestStatus.FINISHED_LENGTH_CAPPED
                stopped = True
            return new_token_ids, stopped

    return EarlyStopScheduler
