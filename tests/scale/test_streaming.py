"""Reading logs in one pass: the streaming reader, the retiring fold, the bounded checker."""

from __future__ import annotations

from pathlib import Path

import msgspec
import orjson
import pytest

from helpers.scale import run_rolling
from helpers.scale import write_rolling
from lifecycle_trace import EventLog
from lifecycle_trace import build_timelines
from lifecycle_trace.check import InvariantChecker
from lifecycle_trace.fold import audit
from lifecycle_trace.fold.timeline import Timeline
from lifecycle_trace.fold.timeline import TimelineBuilder
from lifecycle_trace.reader import CorruptLogError
from lifecycle_trace.reader import SkippedLineWarning
from lifecycle_trace.reader import TruncatedLogWarning
from lifecycle_trace.reader import UnsupportedEventError
from lifecycle_trace.reader import iter_jsonl
from lifecycle_trace.store import read_jsonl
from lifecycle_trace.streaming import Contiguous
from lifecycle_trace.streaming import check_records
from lifecycle_trace.streaming import iter_timelines
from minivllm.events import StatusChanged
from minivllm.events import event_to_dict
from minivllm.request import RequestStatus


def _lines(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines()


def test_the_reader_streams_the_same_events_as_read_jsonl(tmp_path: Path) -> None:
    path = write_rolling(tmp_path / "run.jsonl", 60, abort_every=9)
    streamed = [event_to_dict(e) for e in iter_jsonl(path)]
    assert streamed == [event_to_dict(e) for e in read_jsonl(path).events]
    assert len(streamed) == len(_lines(path))


def test_a_cut_short_last_line_is_dropped_and_reported(tmp_path: Path) -> None:
    path = write_rolling(tmp_path / "run.jsonl", 5)
    lines = _lines(path)
    path.write_bytes(b"\n".join(lines[:-1]) + b"\n" + lines[-1][:15])
    reader = iter_jsonl(path)
    with pytest.warns(TruncatedLogWarning, match=rf":{len(lines)}: last line is cut short"):
        events = list(reader)
    assert len(events) == len(lines) - 1 and reader.truncated_line == len(lines)


def test_a_corrupt_line_in_the_middle_names_file_and_line(tmp_path: Path) -> None:
    path = write_rolling(tmp_path / "run.jsonl", 5)
    lines = _lines(path)
    lines[6] = b"{not json"
    path.write_bytes(b"\n".join(lines) + b"\n")
    with pytest.raises(CorruptLogError, match=rf"{path.name}:7: not valid JSON"):
        list(iter_jsonl(path))
    reader = iter_jsonl(path, lenient=True)
    with pytest.warns(SkippedLineWarning, match=":7: .*skipped"):
        assert len(list(reader)) == len(lines) - 1
    assert reader.skipped_lines == [7] and not reader.complete


def test_unknown_type_or_version_is_an_error_even_when_lenient(tmp_path: Path) -> None:
    path = write_rolling(tmp_path / "run.jsonl", 3)
    lines = _lines(path)
    record = orjson.loads(lines[3])
    lines[3] = orjson.dumps({**record, "v": 99})
    path.write_bytes(b"\n".join(lines) + b"\n")
    with pytest.raises(UnsupportedEventError, match=":4: unsupported schema version 99"):
        list(iter_jsonl(path, lenient=True))
    lines[3] = orjson.dumps({**record, "type": "teleported"})
    path.write_bytes(b"\n".join(lines) + b"\n")
    with pytest.raises(UnsupportedEventError, match=":4: unknown event type 'teleported'"):
        list(iter_jsonl(path))


def test_a_reader_reads_once(tmp_path: Path) -> None:
    reader = iter_jsonl(write_rolling(tmp_path / "run.jsonl", 2))
    list(reader)
    with pytest.raises(RuntimeError, match="reads its log once"):
        list(reader)


def test_streamed_timelines_equal_the_in_memory_fold(tmp_path: Path) -> None:
    path = write_rolling(
        tmp_path / "run.jsonl", 300, abort_every=11, num_gpu_blocks=20, in_flight=8
    )
    whole = build_timelines(iter_jsonl(path))
    streamed = {t.request_id: t for t in iter_timelines(iter_jsonl(path).records())}
    assert streamed == whole
    assert any(t.num_preemptions for t in whole.values())
    assert any(t.finish_reason == "abort" for t in whole.values())


def test_the_retiring_fold_holds_only_live_requests() -> None:
    retired: list[Timeline] = []
    builder = TimelineBuilder(on_retire=retired.append)
    most_held = 0

    def watch(event: object) -> None:
        nonlocal most_held
        most_held = max(most_held, builder.num_live)

    run_rolling(1000, (builder, watch), in_flight=16, abort_every=13)
    builder.retire()
    # Live requests, plus those finishing in the current step, never more.
    assert most_held <= 2 * 16
    assert len(retired) == 1000 and builder.num_live == 0


def test_a_retired_request_id_may_come_back() -> None:
    log = EventLog()
    engine = run_rolling(3, (log,))
    engine.add_request([1, 2, 3], request_id="0")
    while engine.has_unfinished_requests():
        engine.step()
    ids = [t.request_id for t in iter_timelines(("engine-0", e) for e in log)]
    assert sorted(ids) == ["0", "0", "1", "2"]


def test_the_checker_forgets_old_finished_requests_but_still_reports_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(audit, "FINISHED_KEPT", 8)
    log = EventLog()
    run_rolling(100, (log,))
    events = list(log)
    c = InvariantChecker()
    for e in events:
        c(e)
    assert c.finish() == []
    assert len(c.fold.recent) <= 8  # the bound this test is about
    finished = [e for e in events if isinstance(e, StatusChanged) and e.new_status > 2]
    last = events[-1]
    for old in (finished[0], finished[-1]):
        late = msgspec.structs.replace(
            old,
            seq=last.seq + 1,
            step=last.step,
            old_status=old.new_status,
            new_status=RequestStatus.RUNNING,
        )
        fresh = InvariantChecker()
        for e in events:
            fresh(e)
        fresh(late)
        assert [v.invariant for v in fresh.finish()] == (
            ["request_identity"] if old is finished[0] else ["finished_is_final"]
        )


def test_check_records_checks_each_engine_apart(tmp_path: Path) -> None:
    a = write_rolling(tmp_path / "a.jsonl", 40, engine_id="rank-0")
    b = write_rolling(tmp_path / "b.jsonl", 40, engine_id="rank-1", seed=1)
    records = [*iter_jsonl(a).records(), *iter_jsonl(b).records()]
    assert check_records(records) == {"rank-0": [], "rank-1": []}


def test_contiguous_stops_or_raises_at_a_gap(tmp_path: Path) -> None:
    records = list(iter_jsonl(write_rolling(tmp_path / "run.jsonl", 5)).records())
    gappy = records[:10] + records[11:]
    stopped = Contiguous(gappy, on_gap=lambda error: True)
    assert list(stopped) == records[:10] and stopped.num_records == 10
    with pytest.raises(ValueError, match="expected seq 10, got seq 11"):
        list(Contiguous(gappy))


@pytest.mark.parametrize("chunk", [512, 4000])
def test_damage_in_any_chunk_names_its_line_and_the_rest_reads_the_same(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, chunk: int
) -> None:
    # Small chunks: the log spans many decoder calls, and lines cross chunk reads.
    from lifecycle_trace.log import reader as reader_module

    monkeypatch.setattr(reader_module, "_CHUNK", chunk)
    path = write_rolling(tmp_path / "run.jsonl", 30)
    lines = _lines(path)
    assert sum(map(len, lines)) > 10 * chunk
    clean = [event_to_dict(e) for e in iter_jsonl(path)]
    assert len(clean) == len(lines)
    damaged = sorted({len(lines) // 3, len(lines) // 2, len(lines) - 5})
    for i in damaged:
        lines[i] = b'{"type": "counter_updated", "seq": "x"}'
    lines.insert(len(lines) // 4, b"")  # a blank line shifts every later line number
    path.write_bytes(b"\n".join(lines) + b"\n")
    numbers = [i + 2 for i in damaged]  # 1-based, after the blank line
    with pytest.raises(CorruptLogError, match=rf":{numbers[0]}: event type 'counter_updated'"):
        list(iter_jsonl(path))
    reader = iter_jsonl(path, lenient=True)
    with pytest.warns(SkippedLineWarning):
        events = [event_to_dict(e) for e in reader]
    assert reader.skipped_lines == numbers
    assert events == [d for i, d in enumerate(clean) if i not in damaged]
