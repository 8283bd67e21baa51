"""A request id reused once its request finished: every life is kept, by every command.

The fold keys lives, ``(engine, request id, life)``; where a result is keyed
by request id (``build_timelines``, ``status_intervals``, ``show``'s rows,
``plot``'s labels), a reused id's later lives are ``ID#2``, ``ID#3``...
"""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers.export import otlp_spans
from lifecycle_trace.cli import main
from lifecycle_trace.fold.intervals import status_intervals
from lifecycle_trace.fold.timeline import build_timelines
from lifecycle_trace.fold.timeline import iter_timelines
from lifecycle_trace.fold.timeline import life_labels
from lifecycle_trace.log import EventLog
from lifecycle_trace.log import iter_jsonl
from lifecycle_trace.log import write_jsonl
from minivllm import LLMEngine
from minivllm import SamplingParams
from minivllm.events import RequestAdded


def _reused_log(engine_id: str = "engine-0") -> EventLog:
    log = EventLog()
    engine = LLMEngine(observers=[log], max_model_len=64, engine_id=engine_id)
    for i in range(3):
        engine.add_request([65 + i] * 4, SamplingParams(max_tokens=3), request_id="same")
        while engine.has_unfinished_requests():
            engine.step()
    engine.add_request([70] * 4, SamplingParams(max_tokens=2), request_id="other")
    while engine.has_unfinished_requests():
        engine.step()
    return log


@pytest.fixture
def reused(tmp_path: Path) -> Path:
    path = tmp_path / "reused.jsonl"
    write_jsonl(_reused_log(), path)
    return path


def test_the_library_keeps_every_life() -> None:
    log = _reused_log()
    timelines = build_timelines(log)
    assert list(timelines) == ["same", "same#2", "same#3", "other"]
    assert [t.request_id for t in timelines.values()] == ["same"] * 3 + ["other"]
    assert [t.num_prompt_tokens for t in timelines.values()] == [4, 4, 4, 4]
    assert len({t.key for t in timelines.values()}) == 4
    assert list(status_intervals(log)) == ["same", "same#2", "same#3", "other"]
    assert len(list(iter_timelines(log))) == 4


def test_a_label_never_takes_another_requests_id() -> None:
    class Life:
        def __init__(self, request_id: str) -> None:
            self.engine_id = "e"
            self.request_id = request_id

    lives = [Life("a"), Life("a#2"), Life("a")]
    assert life_labels(lives) == ["a", "a#2", "a#2#"]


def test_show_check_and_stats_see_every_life(
    reused: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["show", str(reused)]) == 0
    rows = [line.split()[0] for line in capsys.readouterr().out.splitlines() if line.strip()]
    for label in ("same", "same#2", "same#3", "other"):
        assert rows.count(label) == 2  # a chart row and a table row
    assert main(["check", str(reused)]) == 0
    assert "no invariant violated" in capsys.readouterr().out
    assert main(["stats", str(reused)]) == 0
    assert "4 requests" in capsys.readouterr().out
    assert main(["show", str(reused), "--request", "same"]) == 0
    out = capsys.readouterr().out
    assert "same#3" in out and "other" not in out


def test_slice_keeps_every_life_of_the_id(
    reused: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "slice.jsonl"
    assert main(["slice", str(reused), "--requests", "same", "-o", str(out)]) == 0
    added = [e for e in iter_jsonl(out) if type(e) is RequestAdded]
    assert [e.request_id for e in added] == ["same"] * 3
    assert main(["check", str(out)]) == 0


@pytest.mark.parametrize("fmt", ["chrome", "otel", "prometheus", "parquet"])
def test_every_export_takes_every_life(
    fmt: str, reused: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    if fmt == "parquet":
        pytest.importorskip("pyarrow", reason="the 'parquet' extra is not installed")
    if fmt == "otel":
        pytest.importorskip("opentelemetry.sdk", reason="the 'otel' extra is not installed")
    if fmt == "prometheus":
        pytest.importorskip("prometheus_client", reason="the 'prometheus' extra is not installed")
    out = tmp_path / ("out" if fmt == "parquet" else f"out.{fmt}")
    assert main(["export", str(reused), "--format", fmt, "-o", str(out)]) == 0
    if fmt == "otel":
        spans = [span for span in otlp_spans(out) if span["name"] == "llm_request"]
        assert len(spans) == 4
    if fmt == "prometheus":
        assert "vllm:request_success_total" in out.read_text()


def test_plot_labels_each_life(reused: Path, tmp_path: Path) -> None:
    out = tmp_path / "p.svg"
    assert main(["plot", str(reused), "-o", str(out)]) == 0
    svg = out.read_text()
    assert "same#2" in svg and "same#3" in svg


def test_diff_and_merge_take_reused_ids(
    reused: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["diff", str(reused), str(reused)]) == 0
    other = tmp_path / "other.jsonl"
    write_jsonl(_reused_log("engine-1"), other)
    merged = tmp_path / "merged.jsonl"
    assert main(["merge", str(reused), str(other), "-o", str(merged)]) == 0
    capsys.readouterr()
    assert main(["show", str(merged), "--limit", "0"]) == 0
    out = capsys.readouterr().out
    for engine in ("engine-0", "engine-1"):
        for label in ("same", "same#2", "same#3", "other"):
            assert f"{engine}/{label} " in out
