"""The four reference workloads, step by step, exactly as vLLM 0.22.1 ran them."""

import json
from pathlib import Path

import pytest

from minivllm.workload import Workload, run_workload

DATA = Path(__file__).parent / "data" / "vllm_examples"


@pytest.mark.parametrize("name", ["a", "b", "c", "d"])
def test_matches_vllm_step_for_step(name: str) -> None:
    workload = Workload.load(DATA / f"{name}.json")
    expected = [
        json.loads(line) for line in (DATA / f"{name}.expected.jsonl").read_text().splitlines()
    ]
    got = [record.to_json() for record in run_workload(workload)]
    for want, have in zip(expected, got, strict=False):
        assert have == want, f"step {want['step']} differs"
    assert len(got) == len(expected)
