"""The reference workloads, step by step, exactly as vLLM 0.22.1 ran them.

``vllm_examples``: the synchronous first-come-first-served scheduler.
``vllm_examples_v2``: async scheduling (``EngineCore.step_with_batch_queue``
with a batch queue of two) and the priority policy, every field included
(output placeholders, preemption counts, the batch each step processed).
"""

import json
from pathlib import Path

import pytest

from minivllm.workload import Workload
from minivllm.workload import run_workload

DATA = Path(__file__).parent / "data"
V1 = ["a", "b", "c", "d"]
V2 = ["e_async", "f_priority", "g_async_preempt", "h_async_priority"]


def _expected(folder: str, name: str) -> list[dict[str, object]]:
    text = (DATA / folder / f"{name}.expected.jsonl").read_text()
    return [json.loads(line) for line in text.splitlines()]


@pytest.mark.parametrize(
    ("folder", "name"), [("vllm_examples", n) for n in V1] + [("vllm_examples_v2", n) for n in V2]
)
def test_matches_vllm_step_for_step(folder: str, name: str) -> None:
    workload = Workload.load(DATA / folder / f"{name}.json")
    expected = _expected(folder, name)
    got = [record.to_json(workload.trace_format) for record in run_workload(workload)]
    for want, have in zip(expected, got, strict=False):
        assert have == want, f"step {want['step']} differs"
    assert len(got) == len(expected)


@pytest.mark.parametrize("name", V2)
def test_v2_workloads_are_read_in_the_v2_format(name: str) -> None:
    assert Workload.load(DATA / "vllm_examples_v2" / f"{name}.json").trace_format == 2


@pytest.mark.parametrize("name", V1)
def test_v1_workloads_end_where_every_request_finished(name: str) -> None:
    # In the second format the run goes on while the engine core still holds
    # finished ids: one more step that schedules nothing, as vLLM's busy loop does.
    workload = Workload.load(DATA / "vllm_examples" / f"{name}.json", trace_format=2)
    got = [record.to_json(1) for record in run_workload(workload)]
    expected = _expected("vllm_examples", name)
    assert got[: len(expected)] == expected
    assert len(got) == len(expected) + 1
    assert got[-1]["scheduled"] == {}
