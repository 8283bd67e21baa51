"""The lifecycle-trace command: demo, run, show, check, stats."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from lifecycle_trace.cli import main
from lifecycle_trace.store import read_jsonl


def _chart_row(out: str, rid: str) -> str:
    return next(line for line in out.splitlines() if line.startswith(f"{rid} ") and "  " in line)


def test_demo_shows_chunking_a_preemption_and_stores_its_log(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = tmp_path / "demo.jsonl"
    assert main(["demo", "--log", str(log)]) == 0
    out = capsys.readouterr().out
    assert any("P" in _chart_row(out, rid).split()[-1] for rid in ("r0", "r1", "r2", "r3", "r4"))
    assert "prefilled in chunks" in out
    assert "preempted at step" in out
    assert len(read_jsonl(log).events) > 0

    assert main(["check", str(log)]) == 0
    assert "no invariant violated" in capsys.readouterr().out


def test_run_then_show_and_stats(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    log = tmp_path / "run.jsonl"
    argv = ["run", "Hello, minivllm!", "The KV cache is paged.", "-o", str(log)]
    assert main([*argv, "--max-tokens", "4", "--max-num-batched-tokens", "160"]) == 0
    assert "written to" in capsys.readouterr().out

    assert main(["show", str(log)]) == 0
    out = capsys.readouterr().out
    assert _chart_row(out, "0").split()[-1] == "RRRL"
    assert _chart_row(out, "1").split()[-1] == "RRRL"

    assert main(["stats", str(log)]) == 0
    out = capsys.readouterr().out
    assert "2 requests, 2 finished" in out
    rows = {line.split()[0]: line.split() for line in out.splitlines()[2:]}
    assert rows["ttft"][1] == "2" and rows["tpot"][1] == "2"


def test_run_json_log_goes_to_stderr(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    log = tmp_path / "run.jsonl"
    assert main(["run", "hi", "-o", str(log), "--max-tokens", "2", "--json-log"]) == 0
    err_lines = capsys.readouterr().err.splitlines()
    assert [orjson.loads(x)["seq"] for x in err_lines] == [e.seq for e in read_jsonl(log).events]


def test_check_exits_1_and_lists_violations(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = tmp_path / "run.jsonl"
    assert main(["run", "hello", "-o", str(log), "--max-tokens", "3"]) == 0
    records = [orjson.loads(x) for x in log.read_bytes().splitlines()]
    # A decode step that advances num_computed_tokens by 2 breaks "decode advances by 1".
    for r in records:
        if r["type"] == "counter_updated" and r["counter"] == "num_computed_tokens" and r["old"]:
            r["new"] = r["old"] + 2
            break
    log.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in records))
    capsys.readouterr()
    assert main(["check", str(log)]) == 1
    out = capsys.readouterr().out
    assert "violation(s)" in out and "request 0" in out


def test_bad_log_is_exit_3_naming_the_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = tmp_path / "bad.jsonl"
    assert main(["run", "hello", "-o", str(log), "--max-tokens", "2"]) == 0
    lines = log.read_bytes().splitlines()
    lines[1] = b"{not json"
    log.write_bytes(b"\n".join(lines) + b"\n")
    assert main(["show", str(log)]) == 3
    assert f"{log}:2: not valid JSON" in capsys.readouterr().err
    assert main(["show", str(tmp_path / "missing.jsonl")]) == 3
    assert "no such log file" in capsys.readouterr().err


def test_lenient_show_reads_up_to_the_damage(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = tmp_path / "bad.jsonl"
    assert main(["run", "hello", "world", "-o", str(log), "--max-tokens", "2"]) == 0
    lines = log.read_bytes().splitlines()
    lines[-3] = b"{not json"
    log.write_bytes(b"\n".join(lines) + b"\n")
    capsys.readouterr()
    assert main(["show", "--lenient", str(log)]) == 0
    err = capsys.readouterr().err
    assert "skipped (lenient)" in err and "reading stops there" in err


def test_python_dash_m_runs_the_cli() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "lifecycle_trace", "--help"], capture_output=True, text=True
    )
    assert result.returncode == 0
    assert all(cmd in result.stdout for cmd in ("demo", "run", "show", "check", "stats"))


def test_lab_prints_the_trace_and_answers(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["lab", "The KV cache is paged.", "--max-tokens", "4"]
    assert main([*argv, "--max-num-batched-tokens", "8", "--max-num-seqs", "4"]) == 0
    out = capsys.readouterr().out
    # 22 prompt tokens in chunks of 8: prefill completes in step 2, then 1 token per step.
    assert "prefill done (num_computed_tokens >= 22) at step: 2" in out
    assert "growth of num_computed_tokens per step after that: [1, 1, 1]" in out
    assert "status sequence: RUNNING -> FINISHED_LENGTH_CAPPED" in out


def test_runs_with_their_own_engine_ids_merge(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    logs = [tmp_path / f"{name}.jsonl" for name in ("a", "b")]
    for name, log in zip(("rank-a", "rank-b"), logs, strict=True):
        assert main(["run", "hello", "-o", str(log), "--max-tokens", "2", "--engine-id", name]) == 0
    merged = tmp_path / "merged.jsonl"
    assert main(["merge", *map(str, logs), "-o", str(merged)]) == 0
    capsys.readouterr()
    assert main(["stats", str(merged)]) == 0
    engines = {json.loads(line)["engine"] for line in merged.read_text().splitlines()}
    assert engines == {"rank-a", "rank-b"}
