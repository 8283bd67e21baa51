"""Shared by the tests of the real-vLLM integration: the skip, the data, an altered scheduler."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import attrs
import pytest

from lifecycle_trace.vllm import vllm_missing_reason
from minivllm.sampling_params import SamplingParams
from minivllm.tokenizer import ByteTokenizer
from minivllm.workload import WorkloadRequest

EOS_TOKEN_ID = ByteTokenizer.eos_token_id

REASON = vllm_missing_reason()

DATA = Path(__file__).parents[1] / "data"
V1 = DATA / "vllm_examples"
V1_NAMES = ("a", "b", "c", "d")


def skip_without_vllm() -> None:
    """Skip the calling test module, with the reason, when vLLM 0.22.1 cannot be used."""
    if REASON is not None:
        pytest.skip(REASON, allow_module_level=True)


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


V2 = DATA / "vllm_examples_v2"
V2_NAMES = ("e_async", "f_priority", "g_async_preempt", "h_async_priority")
STOP_TOKEN_ID = 9


@attrs.frozen
class Reference:
    """A reference workload (v1 or v2 format) as the vLLM driver takes it."""

    name: str
    v2: bool
    engine_kwargs: dict[str, Any]
    requests: tuple[WorkloadRequest, ...]
    priorities: dict[str, int]
    script: dict[str, dict[int, int]]
    async_scheduling: bool
    policy: str
    expected: list[dict[str, Any]]

    def token(self, request_id: str, index: int) -> int:
        """The scripted model: EOS or the stop token where the workload says, else 7."""
        return self.script.get(request_id, {}).get(index, 7)


def reference(name: str) -> Reference:
    """Load ``tests/data/vllm_examples{,_v2}/NAME.json`` and its expected trace."""
    v2 = name in V2_NAMES
    folder = V2 if v2 else V1
    data = json.loads((folder / f"{name}.json").read_text())
    config = data["config"]
    usable = (config["num_blocks"] - 1) * config["block_size"]
    kwargs = {
        "max_num_seqs": config["max_num_seqs"],
        "max_num_batched_tokens": config["max_num_batched_tokens"],
        "block_size": config["block_size"],
        "num_gpu_blocks": config["num_blocks"],
        "enable_chunked_prefill": config.get("enable_chunked_prefill", True),
        "long_prefill_token_threshold": config.get("long_prefill_token_threshold", 0),
        "enable_prefix_caching": config.get("enable_prefix_caching", False),
        "max_model_len": min(config.get("max_model_len", 4096), usable),
    }
    requests, priorities, script = [], {}, {}
    for i, r in enumerate(data["requests"]):
        requests.append(
            WorkloadRequest(
                id=r["id"],
                prompt_token_ids=[100 + i] * r["prompt_len"],
                sampling_params=SamplingParams(
                    max_tokens=r["max_tokens"],
                    min_tokens=r.get("min_tokens", 0),
                    ignore_eos=r.get("ignore_eos", False),
                    stop_token_ids=tuple(r.get("stop_token_ids", ())),
                ),
                arrival=r.get("arrival", 0),
                abort=r.get("abort_at", r.get("abort")),
            )
        )
        priorities[r["id"]] = r.get("priority", 0)
        script[r["id"]] = {
            at: token
            for at, token in ((r.get("eos_at"), EOS_TOKEN_ID), (r.get("stop_at"), STOP_TOKEN_ID))
            if at is not None
        }
    expected = [json.loads(line) for line in (folder / f"{name}.expected.jsonl").open()]
    return Reference(
        name,
        v2,
        kwargs,
        tuple(requests),
        priorities,
        script,
        bool(config.get("async_scheduling", False)),
        config.get("policy", "fcfs"),
        expected,
    )
