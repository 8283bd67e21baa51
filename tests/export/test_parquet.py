"""Parquet: the events and one row per request, written as the log is read, read back by pyarrow."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("pyarrow.parquet", reason="the 'parquet' extra is not installed")

import pyarrow.parquet as pq
from hypothesis import given
from hypothesis import settings

from helpers.export import run_scenario_logged
from helpers.scale import write_merged
from lifecycle_trace.cli import main
from lifecycle_trace.export.parquet import EVENTS_FILE
from lifecycle_trace.export.parquet import REQUESTS_FILE
from lifecycle_trace.export.parquet import event_schema
from lifecycle_trace.export.parquet import request_schema
from lifecycle_trace.export.parquet import write_parquet
from lifecycle_trace.fold.timeline import build_timelines
from lifecycle_trace.reader import LogReader
from lifecycle_trace.store import write_jsonl
from lifecycle_trace.testing import Scenario
from lifecycle_trace.testing import scenarios
from minivllm.events import EngineConfigured
from minivllm.events import Event
from minivllm.events import RequestAdded
from minivllm.events import event_to_dict

TIMELINE_COLUMNS = (
    "num_prompt_tokens",
    "max_tokens",
    "min_tokens",
    "num_output_tokens",
    "num_cached_tokens",
    "num_preemptions",
    "arrival_ns",
    "first_scheduled_ns",
    "first_token_ns",
    "last_token_ns",
    "finished_ns",
    "finished_step",
    "finish_reason",
    "queue_time_ns",
    "ttft_ns",
    "prefill_time_ns",
    "decode_time_ns",
    "inference_time_ns",
    "e2e_time_ns",
    "tpot_ns",
)


def _expected_event_row(event: Event, engine: str) -> dict[str, Any]:
    row = event_to_dict(event)
    stop = row.get("stop_reason")
    if isinstance(stop, int):
        row["stop_reason"], row["stop_reason_token"] = None, stop
    if "num_scheduled_tokens" in row:
        row["num_scheduled_tokens"] = list(row["num_scheduled_tokens"].items())
    return {"engine": engine, **row}


def assert_tables_match(events: list[Event], out: Path) -> None:
    engine = next(e.engine_id for e in events if isinstance(e, EngineConfigured))
    table = pq.read_table(out / EVENTS_FILE)
    assert table.schema == event_schema()
    rows = table.to_pylist()
    assert len(rows) == len(events)
    for row, event in zip(rows, events, strict=True):
        expected = _expected_event_row(event, engine)
        assert {k: v for k, v in row.items() if v is not None or k in expected} == expected
    requests = pq.read_table(out / REQUESTS_FILE)
    assert requests.schema == request_schema()
    by_key = {(r["engine"], r["request_id"], r["life"]): r for r in requests.to_pylist()}
    timelines = build_timelines(events)
    assert len(by_key) == len(timelines)
    asked = {e.seq: e for e in events if isinstance(e, RequestAdded)}
    for t in timelines.values():
        row = by_key[(engine, t.request_id, t.added_seq)]
        a = asked[t.added_seq]
        assert (row["priority"], row["temperature"], row["top_p"], row["n"]) == (
            a.priority,
            a.temperature,
            a.top_p,
            a.n,
        )
        assert row["status"] == t.status.name
        for column in TIMELINE_COLUMNS:
            assert row[column] == getattr(t, column), column


@settings(max_examples=20)
@given(scenario=scenarios())
def test_read_back_the_tables_are_the_log_and_its_timelines(
    scenario: Scenario, tmp_path_factory: pytest.TempPathFactory
) -> None:
    events = run_scenario_logged(scenario)
    out = tmp_path_factory.mktemp("parquet")
    assert write_parquet(events, out) == (len(events), len(build_timelines(events)))
    assert_tables_match(events, out)


def test_the_demo_log_through_the_command(
    demo_events: list[Event], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = tmp_path / "demo.jsonl"
    write_jsonl(demo_events, log)
    out = tmp_path / "tables"
    assert main(["export", str(log), "--format", "parquet", "-o", str(out)]) == 0
    assert "written to" in capsys.readouterr().out
    assert sorted(p.name for p in out.iterdir()) == [EVENTS_FILE, REQUESTS_FILE]
    assert_tables_match(demo_events, out)
    requests = pq.read_table(out / REQUESTS_FILE).to_pylist()
    assert {r["finish_reason"] for r in requests} >= {"length", "abort"}


def test_row_groups_bound_what_is_held(demo_events: list[Event], tmp_path: Path) -> None:
    write_parquet(demo_events, tmp_path, batch_size=16)
    events = pq.ParquetFile(tmp_path / EVENTS_FILE)
    assert events.metadata.num_row_groups == math.ceil(len(demo_events) / 16)
    assert max(events.metadata.row_group(i).num_rows for i in range(events.num_row_groups)) == 16
    assert_tables_match(demo_events, tmp_path)


def test_a_merged_log_names_each_rows_engine(tmp_path: Path) -> None:
    merged = write_merged(tmp_path, 12, 2)
    out = tmp_path / "tables"
    assert main(["export", str(merged), "--format", "parquet", "-o", str(out)]) == 0
    events = pq.read_table(out / EVENTS_FILE)
    records = list(LogReader(merged).records())
    assert events.column("engine").to_pylist() == [engine for engine, _ in records]
    requests = pq.read_table(out / REQUESTS_FILE).to_pylist()
    assert sorted({r["engine"] for r in requests}) == ["rank-0", "rank-1"]
    assert len(requests) == 24


def test_a_failed_export_leaves_no_table(demo_events: list[Event], tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="never added"):
        write_parquet(demo_events[len(demo_events) // 2 :], tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_user_errors(
    demo_events: list[Event], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = tmp_path / "demo.jsonl"
    write_jsonl(demo_events, log)
    assert main(["export", str(log), "--format", "parquet"]) == 2
    assert "name it with -o DIR" in capsys.readouterr().err
    assert main(["export", str(log), "--format", "parquet", "-o", str(log)]) == 2
    assert "writes a directory, not a file" in capsys.readouterr().err
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        write_parquet(demo_events, tmp_path / "x", batch_size=0)
