"""The driver is vLLM: its runs reproduce the reference traces of vLLM 0.22.1 step for step."""

from __future__ import annotations

import pytest

from helpers.vllm import NAMES
from helpers.vllm import expected
from helpers.vllm import reference
from helpers.vllm import skip_without_vllm

skip_without_vllm()

from lifecycle_trace.vllm.driver import run_workload  # noqa: E402


@pytest.mark.parametrize("name", NAMES)
def test_driver_reproduces_the_reference_run(name: str) -> None:
    workload = reference(name)
    want = expected(name)
    got = [record.to_json(workload.trace_format) for record in run_workload(workload)]
    for line, have in zip(want, got, strict=False):
        assert have == line, f"step {line['step']} differs"
    assert len(got) == len(want)
