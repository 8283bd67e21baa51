"""The driver is vLLM: its runs reproduce the reference traces of vLLM 0.22.1 step for step."""

from __future__ import annotations

import json

import pytest

from helpers.vllm import V1, V1_NAMES, skip_without_vllm

skip_without_vllm()

from lifecycle_trace.vllm.driver import VllmEngine, run_workload  # noqa: E402
from minivllm.workload import Workload  # noqa: E402


@pytest.mark.parametrize("name", V1_NAMES)
def test_driver_reproduces_the_reference_run(name: str) -> None:
    workload = Workload.load(V1 / f"{name}.json")
    lines = (V1 / f"{name}.expected.jsonl").read_text().splitlines()
    expected = [json.loads(line) for line in lines]
    engine = VllmEngine(**workload.engine_kwargs)
    got = [step.to_json(v2=False) for step in run_workload(engine, workload.requests)]
    for want, have in zip(expected, got, strict=False):
        assert have == want, f"step {want['step']} differs"
    assert len(got) == len(expected)
