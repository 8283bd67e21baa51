"""JSON Lines store: round trips, replay equals live, and damage handled as documented."""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import orjson
import pytest
from hypothesis import HealthCheck
from hypothesis import given
from hypothesis import settings

from helpers.trace import reference
from helpers.trace import run_logged
from helpers.trace import workloads
from lifecycle_trace.fold.timeline import build_timelines
from lifecycle_trace.logging import make_json_logger
from lifecycle_trace.store import CorruptLogError
from lifecycle_trace.store import JsonlWriter
from lifecycle_trace.store import SkippedLineWarning
from lifecycle_trace.store import TruncatedLogWarning
from lifecycle_trace.store import UnsupportedEventError
from lifecycle_trace.store import read_jsonl
from lifecycle_trace.store import replay
from lifecycle_trace.store import write_jsonl
from minivllm.events import event_to_dict
from minivllm.workload import Workload
from minivllm.workload import run_workload


@pytest.fixture
def stored(tmp_path: Path) -> tuple[Path, list[object]]:
    log, _ = run_logged(reference("d"))
    path = tmp_path / "d.jsonl"
    assert write_jsonl(log, path) == len(log)
    return path, list(log)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(workloads())
def test_replay_rebuilds_exactly_the_live_timelines(tmp_path: Path, workload: Workload) -> None:
    log, _ = run_logged(workload)
    path = tmp_path / "run.jsonl"
    write_jsonl(log, path)
    loaded = read_jsonl(path)
    assert loaded.complete
    assert loaded.events == list(log)
    assert replay(path) == build_timelines(log)


def test_every_line_is_event_to_dict(stored: tuple[Path, list[object]]) -> None:
    path, events = stored
    lines = path.read_bytes().splitlines()
    assert [orjson.loads(line) for line in lines] == [event_to_dict(e) for e in events]  # type: ignore[arg-type]


def test_live_writer_writes_the_same_bytes(
    tmp_path: Path, stored: tuple[Path, list[object]]
) -> None:
    path, _ = stored
    live = tmp_path / "live.jsonl"
    with JsonlWriter(live) as writer:
        for _ in run_workload(reference("d"), on_engine=lambda e: e.bus.subscribe(writer)):
            pass
    assert writer.num_written == len(path.read_bytes().splitlines())
    # Timestamps differ between runs; everything else is identical.
    strip = lambda p: [{**orjson.loads(x), "ts_ns": 0} for x in p.read_bytes().splitlines()]  # noqa: E731
    assert strip(live) == strip(path)


def test_structlog_lines_read_back_as_the_same_events(stored: tuple[Path, list[object]]) -> None:
    buffer = io.BytesIO()
    log, _ = run_logged(reference("c"))
    observer = make_json_logger(buffer)
    for event in log:
        observer(event)
    path = stored[0].with_name("structlog.jsonl")
    path.write_bytes(buffer.getvalue())
    assert read_jsonl(path).events == list(log)


def test_truncated_last_line_is_dropped_and_reported(stored: tuple[Path, list[object]]) -> None:
    path, events = stored
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 20])  # cut the last line short
    with pytest.warns(TruncatedLogWarning, match=rf"{path.name}:{len(events)}: last line"):
        loaded = read_jsonl(path)
    assert loaded.truncated_line == len(events)
    assert loaded.events == events[:-1]
    assert not loaded.complete


def test_corrupt_line_is_an_error_naming_file_and_line(stored: tuple[Path, list[object]]) -> None:
    path, events = stored
    lines = path.read_bytes().splitlines()
    lines[6] = lines[6][: len(lines[6]) // 2]
    path.write_bytes(b"\n".join(lines) + b"\n")
    with pytest.raises(CorruptLogError, match=rf"{path.name}:7: not valid JSON") as info:
        read_jsonl(path)
    assert info.value.line_number == 7 and info.value.path == str(path)
    with pytest.warns(SkippedLineWarning, match=":7:"):
        loaded = read_jsonl(path, lenient=True)
    assert loaded.skipped_lines == (7,)
    assert loaded.events == events[:6] + events[7:]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"seq": None, "drop": "seq"}, "missing required field `seq`"),
        ({"type": None, "drop": "type"}, "no 'type' key"),
    ],
)
def test_a_line_missing_a_field_is_corrupt(
    stored: tuple[Path, list[object]], change: dict[str, object], message: str
) -> None:
    path, _ = stored
    lines = path.read_bytes().splitlines()
    record = orjson.loads(lines[3])
    del record[change["drop"]]
    lines[3] = orjson.dumps(record)
    path.write_bytes(b"\n".join(lines))
    with pytest.raises(CorruptLogError, match=rf":4: .*{message}"):
        read_jsonl(path)


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("type", "request_teleported", "unknown event type 'request_teleported'"),
        ("v", 99, "unsupported schema version 99"),
    ],
)
def test_unknown_type_or_version_is_an_error_even_when_lenient(
    stored: tuple[Path, list[object]], key: str, value: object, message: str
) -> None:
    path, _ = stored
    lines = path.read_bytes().splitlines()
    lines[2] = orjson.dumps({**orjson.loads(lines[2]), key: value})
    path.write_bytes(b"\n".join(lines))
    for lenient in (False, True):
        with pytest.raises(UnsupportedEventError, match=rf":3: {message}"):
            read_jsonl(path, lenient=lenient)


def test_blank_lines_are_ignored(stored: tuple[Path, list[object]]) -> None:
    path, events = stored
    path.write_bytes(path.read_bytes().replace(b"\n", b"\n\n", 3))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert read_jsonl(path).events == events


V1_LOG = Path(__file__).parent.parent / "data" / "event_logs" / "schema_v1.jsonl"


def test_a_version_1_log_reads_folds_and_checks() -> None:
    from lifecycle_trace.checker import check

    loaded = read_jsonl(V1_LOG)
    assert loaded.complete and len(loaded.events) == len(V1_LOG.read_bytes().splitlines())
    assert check(loaded.events) == []
    timelines = build_timelines(loaded.events)
    assert sorted(timelines) == ["0", "1", "2", "3", "4"]
    assert any(t.num_preemptions for t in timelines.values())
