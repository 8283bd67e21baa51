"""lifecycle-trace diff and assert_same_lifecycle, on minivllm runs (no vLLM needed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import attrs
import pytest
from hypothesis import given

from helpers.engine import engine_config
from helpers.trace import reference
from helpers.trace import workloads
from lifecycle_trace.cli import main
from lifecycle_trace.diffing import Divergence
from lifecycle_trace.diffing import LifecycleMismatch
from lifecycle_trace.diffing import all_lives
from lifecycle_trace.diffing import diff_logs
from lifecycle_trace.diffing import diff_timelines
from lifecycle_trace.diffing import format_divergences
from lifecycle_trace.fold.timeline import iter_timelines
from lifecycle_trace.sink import JsonlWriter
from lifecycle_trace.testing import EOS_TOKEN_ID
from lifecycle_trace.testing import FakeClock
from lifecycle_trace.testing import Scenario
from lifecycle_trace.testing import ScriptedSampler
from lifecycle_trace.testing import assert_same_lifecycle
from lifecycle_trace.testing import run_scenario
from minivllm.bus import Handler
from minivllm.engine.llm_engine import LLMEngine
from minivllm.events import Event
from minivllm.model_executor.dummy import DummyModelRunner
from minivllm.request import RequestStatus
from minivllm.sampling_params import SamplingParams
from minivllm.workload import Workload
from minivllm.workload import WorkloadRequest
from minivllm.workload import run_workload


def _log(workload: Workload, path: Path | None = None, **overrides: Any) -> list[Event]:
    log: list[Event] = []

    def attach(engine: LLMEngine) -> None:
        engine.bus.subscribe(log.append)

    workload = Workload({**workload.engine_kwargs, **overrides}, workload.requests)
    for _ in run_workload(workload, on_engine=attach, clock=FakeClock()):
        pass
    if path is not None:
        with JsonlWriter(path) as sink:
            for e in log:
                sink(e)
    return log


def _lives(log: list[Event]) -> list[Any]:
    return list(iter_timelines(("", e) for e in log))


def test_the_same_run_twice_does_not_differ(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    _log(reference("d"), a)
    _log(reference("d"), b)
    assert diff_logs(a, b) == ([], [])
    assert main(["diff", str(a), str(b)]) == 0
    assert "same lifecycle for every request, at every step" in capsys.readouterr().out


def test_a_smaller_kv_cache_parts_where_a_request_no_longer_fits(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Workload c: two 40-token prompts (3 blocks of 16 each) share 6 usable
    # blocks. With 5, r1 cannot be admitted at step 0 and waits.
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    _log(reference("c"), a)
    _log(reference("c"), b, num_gpu_blocks=6, max_model_len=80)
    divergences, config = diff_logs(a, b, context=1)
    assert config == ["max_model_len: 96 vs 80", "num_gpu_blocks: 7 vs 6"]
    # r0 runs alone either way (5 blocks hold its 80 tokens); only r1 parts.
    [r1] = divergences
    assert (r1.request_id, r1.step) == ("r1", 0)
    assert r1.what.startswith("status RUNNING vs WAITING")
    assert [row[0] for row in r1.rows] == [0, 1]

    assert main(["diff", str(a), str(b), "--context", "1"]) == 1
    out = capsys.readouterr().out
    assert "note: the engines' limits differ: max_model_len: 96 vs 80; num_gpu_blocks" in out
    assert "1 request(s) part:" in out
    assert "request r1: parts at step 0: status RUNNING vs WAITING" in out
    assert ">      0  RUNNING c=40 t=41 o=1" in out


def test_a_request_in_one_log_only_is_reported() -> None:
    full = reference("d")
    fewer = Workload(full.engine_kwargs, [r for r in full.requests if r.id != "r7"])
    divergences = diff_timelines(_lives(_log(full)), _lives(_log(fewer)))
    assert [(d.request_id, d.step, d.what) for d in divergences] == [
        ("r7", None, "only in A (added at step 5)")
    ]
    assert divergences[0].rows[0] == (5, "WAITING c=0 t=20 o=0", "-")


def test_lives_of_a_reused_id_are_aligned_in_order() -> None:
    def run(second_max_tokens: int) -> list[Event]:
        log: list[Event] = []
        engine = LLMEngine(
            DummyModelRunner(token_id=7),
            observers=[log.append],
            clock=FakeClock(),
            max_model_len=64,
        )
        engine.add_request([5] * 4, SamplingParams(max_tokens=2), request_id="x")
        while engine.has_unfinished_requests():
            engine.step()
        engine.add_request([5] * 4, SamplingParams(max_tokens=second_max_tokens), request_id="x")
        while engine.has_unfinished_requests():
            engine.step()
        return log

    assert diff_timelines(_lives(run(3)), _lives(run(3))) == []
    [d] = diff_timelines(_lives(run(3)), _lives(run(4)))
    assert (d.request_id, d.life, d.label) == ("x", 1, "x (life 2)")
    assert d.step == 4  # the second life's third step: capped at 3 tokens in A
    assert "request x (life 2): parts at step 4" in format_divergences([d])


@given(workloads())
def test_any_run_diffs_equal_to_itself(workload: Workload) -> None:
    log = _log(workload)
    assert diff_timelines(_lives(log), _lives(log)) == []


def test_context_must_not_be_negative() -> None:
    log = _log(reference("a"))
    with pytest.raises(ValueError, match="context must be 0 or more steps, got -1"):
        diff_timelines(_lives(log), _lives(log), context=-1)


def test_diff_refuses_a_missing_file_and_a_merged_log(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a = tmp_path / "a.jsonl"
    _log(reference("a"), a)
    assert main(["diff", str(a), str(tmp_path / "nope.jsonl")]) == 3
    assert "no such log file" in capsys.readouterr().err
    b = tmp_path / "b.jsonl"
    _log(reference("b"), b, engine_id="other")
    merged = tmp_path / "merged.jsonl"
    assert main(["merge", str(a), str(b), "-o", str(merged)]) == 0
    assert main(["diff", str(a), str(merged)]) == 2
    assert "one engine each" in capsys.readouterr().err


def _scenario(max_tokens: int = 6) -> Scenario:
    return Scenario(
        engine_config(2, 16, 4, 6, 20),
        (
            WorkloadRequest("p", [3] * 9, SamplingParams(max_tokens=max_tokens)),
            WorkloadRequest("q", [4] * 7, SamplingParams(max_tokens=max_tokens), arrival=1),
            WorkloadRequest("r", [5] * 3, SamplingParams(max_tokens=2), arrival=2, abort=3),
        ),
    )


def _minivllm(**overrides: Any) -> Any:
    def make(scenario: Scenario, observers: list[Handler]) -> LLMEngine:
        kwargs = {**scenario.engine_kwargs, **overrides}
        return LLMEngine(scenario.model(), **kwargs, observers=observers, clock=FakeClock())

    return make


def test_assert_same_lifecycle_passes_for_the_same_engine() -> None:
    log = assert_same_lifecycle(_minivllm(), _minivllm(), _scenario())
    assert any(type(e).__name__ == "StepFinished" for e in log)


def test_assert_same_lifecycle_names_the_request_and_step_that_part() -> None:
    with pytest.raises(LifecycleMismatch) as caught:
        assert_same_lifecycle(_minivllm(), _minivllm(max_num_seqs=1), _scenario())
    mismatch = caught.value
    assert all(isinstance(d, Divergence) for d in mismatch.divergences)
    first = mismatch.divergences[0]
    assert (first.request_id, first.step) == ("q", 1)
    assert "request q: parts at step 1: status RUNNING vs WAITING" in str(mismatch)


def test_a_scripted_token_lands_at_its_output_index_under_async_scheduling() -> None:
    # EOS scripted at output index 3: under async scheduling the batch that
    # samples index 3 is scheduled while index 2 is still in flight.
    config = attrs.evolve(_scenario().config, async_scheduling=True)
    request = WorkloadRequest("p", [3] * 5, SamplingParams(max_tokens=10))
    scenario = Scenario(config, (request,), ScriptedSampler({"p": {3: EOS_TOKEN_ID}}))
    log: list[Event] = []
    run_scenario(scenario, [log.append])
    [t] = all_lives(log)
    assert (t.finish_status, t.num_output_tokens) == (RequestStatus.FINISHED_STOPPED, 4)


def test_under_async_scheduling_the_placeholders_are_compared_and_shown() -> None:
    async_config = attrs.evolve(_scenario().config, async_scheduling=True)
    scenario = Scenario(async_config, _scenario().requests)
    log_a = run_logged(_minivllm(), scenario)
    log_b = run_logged(_minivllm(max_num_seqs=1), scenario)
    first = diff_timelines(all_lives(log_a), all_lives(log_b))[0]
    assert (first.request_id, first.step) == ("q", 1)
    assert "num_output_placeholders 1 vs 0" in first.what
    step_1 = next(row for row in first.rows if row[0] == 1)
    assert step_1[1].endswith(" p=1") and " p=" not in step_1[2]


def run_logged(make: Any, scenario: Scenario) -> list[Event]:
    """The log of ``scenario`` on the engine ``make`` builds."""
    from lifecycle_trace.diffing import run_logged as run
    from lifecycle_trace.testing import step_limit

    return run(make, scenario, step_limit(scenario))
