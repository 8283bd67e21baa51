"""The reference scheduler alone reproduces every recorded vLLM 0.22.1 run, step for step.

The reference shares no code with the engine, so this checks the specification
itself against vLLM; the engine is checked against the same runs in
``tests/test_vllm_examples.py`` and against the reference by the property suite.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from lifecycle_trace.testing.reference import ReferenceConfig
from lifecycle_trace.testing.reference import ReferenceRequest
from lifecycle_trace.testing.reference import ReferenceScheduler
from minivllm.sampling_params import SamplingParams

DATA = Path(__file__).resolve().parents[1] / "data"
RUNS = sorted(DATA.glob("vllm_examples*/*.json"))
EOS = 257
STOP = 9  # the stop token of the recorded runs' ``stop_at``
FILLER = 7


def _config(data: dict[str, Any]) -> ReferenceConfig:
    c = data["config"]
    usable = (c["num_blocks"] - 1) * c["block_size"]
    return ReferenceConfig(
        max_num_seqs=c["max_num_seqs"],
        max_num_batched_tokens=c["max_num_batched_tokens"],
        block_size=c["block_size"],
        num_gpu_blocks=c["num_blocks"],
        max_model_len=min(c.get("max_model_len", 4096), usable),
        enable_chunked_prefill=c.get("enable_chunked_prefill", True),
        long_prefill_token_threshold=c.get("long_prefill_token_threshold", 0),
        enable_prefix_caching=c.get("enable_prefix_caching", False),
        async_scheduling=c.get("async_scheduling", False),
        policy=c.get("policy", "fcfs"),
    )


def _state(q: ReferenceRequest) -> list[Any]:
    counters = (q.num_computed_tokens, q.num_tokens, q.num_output_tokens)
    return [q.status.name, *counters, q.num_output_placeholders, q.num_preemptions]


def replay(data: dict[str, Any], until_idle: bool) -> list[dict[str, Any]]:
    """Drive the reference through a recorded run's workload; one record per step.

    ``until_idle``: step while the engine has work (the v2 runs, as vLLM's engine
    core does), not only while requests are unfinished (the v1 runs).
    """
    requests = data["requests"]
    scripts = {r["id"]: (r.get("eos_at"), r.get("stop_at")) for r in requests}

    def sample(request: ReferenceRequest) -> int:
        index = request.num_output_tokens + request.num_output_placeholders - 1
        eos_at, stop_at = scripts[request.request_id]
        return EOS if index == eos_at else STOP if index == stop_at else FILLER

    reference = ReferenceScheduler(_config(data), sample)
    added: dict[str, ReferenceRequest] = {}
    records = []
    step = 0
    while step < 10_000:
        for i, r in enumerate(requests):
            if r["id"] not in added and r.get("arrival", 0) <= step:
                params = SamplingParams(
                    max_tokens=r["max_tokens"],
                    min_tokens=r.get("min_tokens", 0),
                    ignore_eos=r.get("ignore_eos", False),
                    stop_token_ids=r.get("stop_token_ids", ()),
                )
                prompt = [100 + i] * r["prompt_len"]
                added[r["id"]] = reference.add_request(
                    r["id"], prompt, params, priority=r.get("priority", 0)
                )
        aborted = [
            rid
            for r in requests
            if (rid := r["id"]) in added
            and step in (r.get("abort"), r.get("abort_at"))
            and rid in reference.requests
        ]
        reference.abort(aborted)
        pending = any(r["id"] not in added for r in requests)
        busy = reference.has_work() if until_idle else bool(reference.requests)
        if not busy and not pending:
            return records
        done = reference.step()
        record: dict[str, Any] = {
            "step": step,
            "aborted": aborted,
            "scheduled": dict(done.scheduled),
        }
        record["processed"] = list(done.processed) if done.processed is not None else None
        record["preempted"] = sorted(done.preempted)
        record["free_blocks"] = reference.kv.num_free_blocks
        record["reqs"] = {rid: _state(q) for rid, q in added.items()}
        records.append(record)
        step += 1
    raise AssertionError("the reference did not drain")


@pytest.mark.parametrize("path", RUNS, ids=[f"{p.parent.name}/{p.stem}" for p in RUNS])
def test_reference_reproduces_the_recorded_run(path: Path) -> None:
    data = json.loads(path.read_text())
    expected = [
        json.loads(line)
        for line in path.with_name(f"{path.stem}.expected.jsonl").read_text().splitlines()
    ]
    v2 = "processed" in expected[0]
    got = replay(data, until_idle=v2)
    for want, have in zip(expected, got, strict=False):
        if not v2:
            have.pop("processed", None)
            have["reqs"] = {rid: state[:4] for rid, state in have["reqs"].items()}
        assert have == want, f"step {want['step']} differs"
    assert len(got) == len(expected)


def test_there_are_recorded_runs() -> None:
    assert len(RUNS) >= 4
