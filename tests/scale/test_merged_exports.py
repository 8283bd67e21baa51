"""``export`` (every format) and ``plot`` on a merged log: every engine, each named, no warning."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import pytest

from helpers.export import otlp_spans
from helpers.scale import write_merged
from lifecycle_trace.cli import main
from lifecycle_trace.export.chrome import chrome_trace
from lifecycle_trace.fold.timeline import iter_timelines
from lifecycle_trace.reader import LogReader
from lifecycle_trace.testing.chrome_check import validate_chrome_trace

ENGINES = ("rank-0", "rank-1")
PER_ENGINE = 30


@pytest.fixture
def merged(tmp_path: Path) -> Path:
    return write_merged(tmp_path, PER_ENGINE, len(ENGINES))


def _no_warning(capsys: pytest.CaptureFixture[str]) -> str:
    captured = capsys.readouterr()
    assert "warning" not in captured.err, captured.err
    return captured.out


def test_chrome_gives_each_engine_its_process(
    merged: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "trace.json"
    capsys.readouterr()
    assert main(["export", str(merged), "--format", "chrome", "-o", str(out)]) == 0
    _no_warning(capsys)
    trace = json.loads(out.read_text())
    validate_chrome_trace(trace)
    events = trace["traceEvents"]
    processes = {
        e["pid"]: e["args"]["name"]
        for e in events
        if e["ph"] == "M" and e["name"] == "process_name"
    }
    engines = {pid: name for pid, name in processes.items() if name.startswith("minivllm ")}
    assert sorted(engines.values()) == ["minivllm rank-0", "minivllm rank-1"]
    # Each request is a process of its own, named after its engine and id.
    finishes = Counter(
        processes[e["pid"]].split(" req ")[0] for e in events if e.get("cat") == "finish"
    )
    assert finishes == {"rank-0": PER_ENGINE, "rank-1": PER_ENGINE}
    # The library takes the records of a merged log just as the command does.
    assert chrome_trace(LogReader(merged).records())["traceEvents"] == events


def test_otel_spans_name_their_engine(
    merged: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("opentelemetry.sdk", reason="the 'otel' extra is not installed")
    out = tmp_path / "spans.jsonl"
    capsys.readouterr()
    assert main(["export", str(merged), "--format", "otel", "-o", str(out)]) == 0
    _no_warning(capsys)
    roots = [s for s in otlp_spans(out) if s["name"] == "llm_request"]
    engines = Counter(
        a["value"]["stringValue"]
        for s in roots
        for a in s["attributes"]
        if a["key"] == "minivllm.engine_id"
    )
    assert engines == dict.fromkeys(ENGINES, PER_ENGINE)


def test_prometheus_labels_each_engine(merged: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("prometheus_client", reason="the 'prometheus' extra is not installed")
    capsys.readouterr()
    assert main(["export", str(merged), "--format", "prometheus"]) == 0
    text = _no_warning(capsys)
    for engine in ENGINES:
        line = (
            f'vllm:request_success_total{{engine="{engine}",finished_reason="length",'
            f'model_name="minivllm"}} {float(PER_ENGINE)}'
        )
        assert line in text
    assert 'engine="0"' not in text


def test_plot_draws_every_engine_with_engine_named_rows(
    merged: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "t.svg"
    capsys.readouterr()
    assert main(["plot", str(merged), "-o", str(out)]) == 0
    assert "drew" not in _no_warning(capsys)
    drawn = set(re.findall(r'data-request="([^"]+)"', out.read_text()))
    expected = {
        f"{t.engine_id}/{t.request_id}" for t in iter_timelines(LogReader(merged).records())
    }
    assert len(expected) == len(ENGINES) * PER_ENGINE and drawn == expected
    assert main(["plot", str(merged), "-o", str(out), "--limit", "10"]) == 0
    assert f"drew 10 of {len(ENGINES) * PER_ENGINE} requests" in _no_warning(capsys)
