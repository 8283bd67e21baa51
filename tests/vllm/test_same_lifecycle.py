"""The reference workloads on both engines: the real vLLM log passes check and diffs equal."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers.vllm import V1, V1_NAMES, early_stop_scheduler, skip_without_vllm

skip_without_vllm()

from lifecycle_trace.cli import main  # noqa: E402
from lifecycle_trace.diffing import diff_logs, diff_timelines  # noqa: E402
from lifecycle_trace.fold.timeline import iter_timelines  # noqa: E402
from lifecycle_trace.reader import iter_jsonl  # noqa: E402
from lifecycle_trace.sink import JsonlWriter  # noqa: E402
from lifecycle_trace.vllm.driver import VllmEngine, run_workload  # noqa: E402
from minivllm.engine.llm_engine import LLMEngine  # noqa: E402
from minivllm.events import EngineConfigured, Event  # noqa: E402
from minivllm.workload import Workload  # noqa: E402


def _run(workload: Path, engine: str, out: Path, capsys: pytest.CaptureFixture[str]) -> str:
    assert main(["run", "--workload", str(workload), "--engine", engine, "-o", str(out)]) == 0
    return capsys.readouterr().out


@pytest.mark.parametrize("name", V1_NAMES)
def test_vllm_log_passes_check_and_diffs_equal_to_minivllm(
    name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    mini, real = tmp_path / "minivllm.jsonl", tmp_path / "vllm.jsonl"
    _run(V1 / f"{name}.json", "minivllm", mini, capsys)
    printed = _run(V1 / f"{name}.json", "vllm", real, capsys)
    assert "(vllm) written to" in printed

    assert main(["check", str(real)]) == 0, capsys.readouterr().out
    capsys.readouterr()
    assert main(["diff", str(mini), str(real)]) == 0
    assert "same lifecycle for every request" in capsys.readouterr().out
    config = next(e for e in iter_jsonl(real) if isinstance(e, EngineConfigured))
    assert config.engine_id == "vllm"


def test_a_changed_scheduler_shows_up_at_the_step_it_changes(tmp_path: Path) -> None:
    # Workload a: one request, 12 prompt tokens, max_tokens 5. vLLM caps it at
    # step 4 (its 5th token); a scheduler that caps one token early does at step 3.
    workload = Workload.load(V1 / "a.json")
    logs = {}
    for label, cls in (("vllm", None), ("changed", early_stop_scheduler())):
        path = tmp_path / f"{label}.jsonl"
        with JsonlWriter(path) as sink:
            engine = VllmEngine(observers=[sink], scheduler_cls=cls, **workload.engine_kwargs)
            for _ in run_workload(engine, workload.requests):
                pass
        logs[label] = path
    divergences, config = diff_logs(logs["vllm"], logs["changed"])
    assert config == []
    [d] = divergences
    assert (d.request_id, d.step) == ("r0", 3)
    assert "status RUNNING vs FINISHED_LENGTH_CAPPED" in d.what
    assert "num_tokens 16 vs 16" not in d.what  # only what differs is named
    assert [row[0] for row in d.rows] == [0, 1, 2, 3, 4]


def test_the_diff_command_exits_1_and_names_the_step(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    workload = Workload.load(V1 / "c.json")
    paths = []
    for label, cls in (("vllm", None), ("changed", early_stop_scheduler())):
        path = tmp_path / f"{label}.jsonl"
        with JsonlWriter(path) as sink:
            engine = VllmEngine(observers=[sink], scheduler_cls=cls, **workload.engine_kwargs)
            for _ in run_workload(engine, workload.requests):
                pass
        paths.append(str(path))
    assert main(["diff", *paths, "--context", "1"]) == 1
    out = capsys.readouterr().out
    # r0 (40 tokens, max_tokens 40) is capped at step 38 instead of 39, so r1,
    # preempted at step 9, resumes a step earlier.
    assert "request r0: parts at step 38" in out
    assert "request r1: parts at step 39" in out
    assert "> " in out


def test_timelines_equal_on_minivllm_and_vllm_for_every_reference_run() -> None:
    from minivllm.workload import run_workload as run_on_minivllm

    for name in V1_NAMES:
        workload = Workload.load(V1 / f"{name}.json")
        mini: list[Event] = []

        def record(engine: LLMEngine, log: list[Event] = mini) -> None:
            engine.bus.subscribe(log.append)

        for _ in run_on_minivllm(workload, on_engine=record):
            pass
        real: list[Event] = []
        engine = VllmEngine(observers=[real.append], **workload.engine_kwargs)
        for _ in run_workload(engine, workload.requests):
            pass
        a = list(iter_timelines(("", e) for e in mini))
        b = list(iter_timelines(("", e) for e in real))
        assert diff_timelines(a, b) == [], name
