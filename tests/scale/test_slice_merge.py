"""Slices are valid logs of the chosen requests; merges keep every request with its engine."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import attrs
import orjson
import pytest

from helpers.scale import write_rolling
from lifecycle_trace.fold.timeline import Timeline
from lifecycle_trace.log.merge import DuplicateEngineError
from lifecycle_trace.log.merge import merge_logs
from lifecycle_trace.log.slice import StepRange
from lifecycle_trace.log.slice import parse_step_range
from lifecycle_trace.log.slice import slice_log
from lifecycle_trace.reader import iter_jsonl
from lifecycle_trace.store import replay
from lifecycle_trace.streaming import check_records
from lifecycle_trace.streaming import iter_timelines
from minivllm.events import StepFinished
from minivllm.events import StepStarted
from minivllm.events import event_to_dict

CONFIGS: dict[str, dict[str, Any]] = {
    "preemption and aborts": {"num_gpu_blocks": 20, "in_flight": 8, "abort_every": 7},
    "prefix caching": {"enable_prefix_caching": True, "shared_prefix": 16, "abort_every": 9},
    "tight budget": {"max_num_batched_tokens": 24, "in_flight": 6},
}


def _timelines(path: Path) -> dict[tuple[str, str, int], Timeline]:
    # Keyed by engine, id and arrival: ids may repeat across engines.
    return {
        (t.engine_id, t.request_id, t.arrival_ns): attrs.evolve(t, added_seq=-1)
        for t in iter_timelines(iter_jsonl(path).records())
    }


def _violations(path: Path) -> list[str]:
    # A slice keeps the event rules; its scheduler's decisions weighed requests
    # the slice left out, so the decision rules do not apply to it.
    by_engine = check_records(iter_jsonl(path).records(), decisions=False)
    return [str(v) for vs in by_engine.values() for v in vs]


@pytest.mark.parametrize("config", CONFIGS)
def test_a_request_slice_is_a_valid_log_of_those_requests(tmp_path: Path, config: str) -> None:
    log = write_rolling(tmp_path / "run.jsonl", 120, **CONFIGS[config])
    out = tmp_path / "slice.jsonl"
    chosen = {"3", "17", "18", "64", "119"}
    assert slice_log(log, out, requests=[*chosen, "no-such-id"]) > 0
    assert _violations(out) == []
    whole = _timelines(log)
    assert _timelines(out) == {k: t for k, t in whole.items() if k[1] in chosen}


@pytest.mark.parametrize("config", CONFIGS)
def test_a_step_slice_holds_every_request_live_in_the_window(tmp_path: Path, config: str) -> None:
    log = write_rolling(tmp_path / "run.jsonl", 120, **CONFIGS[config])
    out = tmp_path / "slice.jsonl"
    slice_log(log, out, steps=StepRange(20, 30))
    assert _violations(out) == []
    whole = _timelines(log)
    live = {k for k, t in whole.items() if t.added_step < 30 and t.last_step >= 20}
    sliced = _timelines(out)
    assert set(sliced) == live and all(sliced[k] == whole[k] for k in live)
    # Inside the window every live request is kept, so the step events say what the engine said.
    original = {
        (type(e), e.step): e for e in iter_jsonl(log) if type(e) in (StepStarted, StepFinished)
    }
    for e in iter_jsonl(out):
        if type(e) in (StepStarted, StepFinished) and 20 <= e.step < 30:
            assert e.num_running == original[type(e), e.step].num_running  # type: ignore[attr-defined]
            assert e.num_waiting == original[type(e), e.step].num_waiting  # type: ignore[attr-defined]


def test_a_slice_is_renumbered_and_remembers_the_original_seq(tmp_path: Path) -> None:
    log = write_rolling(tmp_path / "run.jsonl", 30, engine_id="rank-3")
    out = tmp_path / "slice.jsonl"
    slice_log(log, out, requests=["5"])
    original = {e.seq: event_to_dict(e) for e in iter_jsonl(log)}
    lines = [orjson.loads(x) for x in out.read_bytes().splitlines()]
    assert [x["seq"] for x in lines] == list(range(len(lines)))
    assert {x["engine"] for x in lines} == {"rank-3"}
    for x in lines:
        if x["type"] not in ("step_started", "step_finished"):
            source = original[x["src_seq"]]
            assert {k: v for k, v in x.items() if k not in ("seq", "engine", "src_seq")} == {
                k: v for k, v in source.items() if k != "seq"
            }


def test_step_ranges_and_slice_arguments_are_validated(tmp_path: Path) -> None:
    assert parse_step_range("10:20") == StepRange(10, 20)
    assert parse_step_range("7:") == StepRange(7, None)
    assert parse_step_range(":5") == StepRange(None, 5)
    for bad, message in (("10", "expected A:B"), ("a:b", "integers"), ("5:5", "empty"),
                         ("-1:4", "non-negative")):  # fmt: skip
        with pytest.raises(ValueError, match=message):
            parse_step_range(bad)
    log = write_rolling(tmp_path / "run.jsonl", 3)
    with pytest.raises(ValueError, match="exactly one"):
        slice_log(log, tmp_path / "out.jsonl")
    with pytest.raises(ValueError, match="exactly one"):
        slice_log(log, tmp_path / "out.jsonl", requests=["1"], steps=StepRange(1, 2))
    with pytest.raises(ValueError, match="overwrite the input"):
        slice_log(log, log, requests=["1"])


def _three_engines(tmp_path: Path) -> list[Path]:
    return [
        write_rolling(tmp_path / f"rank{i}.jsonl", 60, engine_id=f"rank-{i}", seed=i, **config)
        for i, config in enumerate(CONFIGS.values())
    ]


def test_a_merge_orders_by_time_and_keeps_each_engine_whole(tmp_path: Path) -> None:
    logs = _three_engines(tmp_path)
    merged = tmp_path / "merged.jsonl"
    total = merge_logs(logs, merged)
    records = list(iter_jsonl(merged).records())
    assert total == len(records) == sum(len(p.read_bytes().splitlines()) for p in logs)
    times = [e.ts_ns for _, e in records]
    assert times == sorted(times)
    for i, path in enumerate(logs):
        mine = [event_to_dict(e) for engine, e in records if engine == f"rank-{i}"]
        assert mine == [event_to_dict(e) for e in iter_jsonl(path)]
    # Request ids 0..59 exist in every engine; none of them merge across engines.
    timelines = _timelines(merged)
    assert len(timelines) == 180
    assert timelines == {k: t for p in logs for k, t in _timelines(p).items()}
    assert _violations(merged) == []


def test_a_slice_of_a_merged_log_keeps_its_engines(tmp_path: Path) -> None:
    merged = tmp_path / "merged.jsonl"
    merge_logs(_three_engines(tmp_path), merged)
    out = tmp_path / "slice.jsonl"
    slice_log(merged, out, requests=["4"])
    assert _violations(out) == []
    assert sorted(k[:2] for k in _timelines(out)) == [
        ("rank-0", "4"),
        ("rank-1", "4"),
        ("rank-2", "4"),
    ]


def test_a_merge_refuses_two_logs_of_one_engine(tmp_path: Path) -> None:
    a = write_rolling(tmp_path / "a.jsonl", 5)
    b = write_rolling(tmp_path / "b.jsonl", 5, seed=2)
    out = tmp_path / "merged.jsonl"
    with pytest.raises(
        DuplicateEngineError, match=r"a.jsonl and .*b.jsonl both hold engine 'engine-0'"
    ):
        merge_logs([a, b], out)
    assert not out.exists()
    with pytest.raises(ValueError, match="overwrite the input"):
        merge_logs([a, out], a)


def test_replay_refuses_a_merged_log(tmp_path: Path) -> None:
    merged = tmp_path / "merged.jsonl"
    merge_logs(_three_engines(tmp_path), merged)
    with pytest.raises(ValueError, match="merged log of several engines"):
        replay(merged)


def test_a_step_slice_of_a_merged_log_uses_each_engines_own_steps(tmp_path: Path) -> None:
    logs = _three_engines(tmp_path)
    merged = tmp_path / "merged.jsonl"
    merge_logs(logs, merged)
    out = tmp_path / "slice.jsonl"
    slice_log(merged, out, steps=StepRange(20, 30))
    assert _violations(out) == []
    expected = {
        k
        for log in logs
        for k, t in _timelines(log).items()
        if t.added_step < 30 and t.last_step >= 20
    }
    assert set(_timelines(out)) == expected
