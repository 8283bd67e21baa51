"""lifecycle-trace run --workload FILE --engine minivllm|vllm: the file, the engine, the errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from lifecycle_trace.cli import main
from lifecycle_trace.reader import iter_jsonl
from lifecycle_trace.vllm import vllm_missing_reason
from minivllm.events import EngineConfigured

DATA = Path(__file__).resolve().parents[1] / "data"


def test_a_workload_file_runs_on_minivllm(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "h.jsonl"
    workload = DATA / "vllm_examples_v2" / "h_async_priority.json"
    assert main(["run", "--workload", str(workload), "-o", str(out)]) == 0
    assert capsys.readouterr().out == (f"139 events over 16 steps (minivllm) written to {out}\n")
    config = next(e for e in iter_jsonl(out) if isinstance(e, EngineConfigured))
    assert (config.engine_name, config.policy, config.async_scheduling) == (
        "minivllm",
        "priority",
        True,
    )


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["run", "-o", "x.jsonl"], "give one or more prompts, or --workload FILE"),
        (["run", "--engine", "vllm", "-o", "x.jsonl"], "--engine needs --workload FILE"),
        (["run", "hi", "--workload", "w.json", "-o", "x.jsonl"], "not both"),
        (["run", "--workload", "missing.json", "-o", "x.jsonl"], "no such workload file"),
        (["run", "--workload", "bad.json", "-o", "x.jsonl"], "bad.json: not JSON"),
        (["run", "--workload", "empty.json", "-o", "x.jsonl"], "not a workload file"),
    ],
)
def test_bad_use_is_an_error_that_writes_nothing(
    argv: list[str],
    message: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "w.json").write_text((DATA / "vllm_examples" / "a.json").read_text())
    (tmp_path / "bad.json").write_text("{")
    (tmp_path / "empty.json").write_text("{}")
    bad_file = any(name in message for name in ("no such", "not JSON", "not a workload"))
    assert main(argv) == (3 if bad_file else 2)  # an unreadable input, or bad use
    assert message in capsys.readouterr().err
    assert not (tmp_path / "x.jsonl").exists()


@pytest.mark.skipif(vllm_missing_reason() is None, reason="vLLM is installed here")
def test_the_vllm_engine_without_vllm_says_what_is_missing_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "x.jsonl"
    workload = DATA / "vllm_examples" / "a.json"
    assert main(["run", "--workload", str(workload), "--engine", "vllm", "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert "--engine vllm: vLLM is not installed" in err
    assert "make test-vllm" in err
    assert not out.exists()
