"""The log-reading commands on long and merged logs: show limits, per-engine check and stats."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from helpers.scale import write_merged
from helpers.scale import write_rolling
from lifecycle_trace.cli import main
from lifecycle_trace.reader import iter_jsonl


def _rows(out: str) -> list[str]:
    # The timeline table's rows: after the dashed line under its header.
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("request ")) + 2
    return [line.split()[0] for line in lines[start:] if line.strip() and " " in line.strip()]


def test_show_prints_the_first_requests_and_says_how_many_it_left_out(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = write_rolling(tmp_path / "run.jsonl", 200)
    capsys.readouterr()
    assert main(["show", str(log), "--limit", "5"]) == 0
    out = capsys.readouterr().out
    assert _rows(out)[:5] == ["0", "1", "2", "3", "4"]
    assert "showing 5 of 200 requests" in out
    assert main(["show", str(log), "--request", "150", "--request", "7"]) == 0
    out = capsys.readouterr().out
    assert _rows(out)[:2] == ["7", "150"] and "showing" not in out


def test_show_names_the_engine_of_each_request_of_a_merged_log(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    merged = write_merged(tmp_path)
    capsys.readouterr()
    assert main(["show", str(merged), "--request", "3"]) == 0
    assert sorted(_rows(capsys.readouterr().out)[:2]) == ["rank-0/3", "rank-1/3"]
    assert main(["show", str(merged), "--request", "3", "--engine", "rank-1"]) == 0
    assert _rows(capsys.readouterr().out)[:2] == ["rank-1/3"]


def test_stats_and_check_read_a_merged_log_per_engine(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    merged = write_merged(tmp_path)
    capsys.readouterr()
    assert main(["stats", str(merged)]) == 0
    assert "60 requests across 2 engines, 60 finished" in capsys.readouterr().out
    assert main(["check", str(merged)]) == 0
    assert "no invariant violated" in capsys.readouterr().out

    # Break one engine's log: a decode that samples two tokens at once.
    records = [orjson.loads(x) for x in merged.read_bytes().splitlines()]
    for r in records:
        if (
            r["engine"] == "rank-1"
            and r["type"] == "counter_updated"
            and r["counter"] == "num_tokens"
        ):
            r["new"] = r["old"] + 2
            break
    merged.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in records))
    assert main(["check", str(merged)]) == 1
    out = capsys.readouterr().out
    assert "engine rank-1 request" in out and "engine rank-0" not in out


def test_slice_and_merge_from_the_command_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = write_rolling(tmp_path / "run.jsonl", 50)
    out = tmp_path / "slice.jsonl"
    assert main(["slice", str(log), "--steps", "10:14", "-o", str(out)]) == 0
    assert "events written to" in capsys.readouterr().out
    assert main(["check", str(out)]) == 0
    assert main(["slice", str(log), "--requests", "2", "9", "-o", str(out)]) == 0
    assert {e.request_id for e in iter_jsonl(out) if hasattr(e, "request_id")} == {"2", "9"}
    capsys.readouterr()
    assert main(["slice", str(log), "--steps", "9", "-o", str(out)]) == 2
    assert "expected A:B" in capsys.readouterr().err
    assert main(["merge", str(log), str(log), "-o", str(tmp_path / "m.jsonl")]) == 2
    assert "both hold engine 'engine-0'" in capsys.readouterr().err
