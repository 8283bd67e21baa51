"""``lifecycle-trace export`` and ``plot``: formats, outputs and user errors."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest

from helpers.export import otlp_spans
from lifecycle_trace.cli import main
from lifecycle_trace.cli._export import last_ts_ns
from lifecycle_trace.export.plot import picture_of
from lifecycle_trace.export.plot import timeline_svg
from lifecycle_trace.fold.timeline import build_timelines
from lifecycle_trace.store import write_jsonl
from lifecycle_trace.testing.chrome_check import validate_chrome_trace
from minivllm.events import Event


@pytest.fixture
def log(demo_events: list[Event], tmp_path: Path) -> Path:
    path = tmp_path / "demo.jsonl"
    write_jsonl(demo_events, path)
    return path


def test_chrome_to_a_file_and_to_stdout(
    log: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "trace.json"
    assert main(["export", str(log), "--format", "chrome", "-o", str(out)]) == 0
    assert "written to" in capsys.readouterr().out
    from_file = json.loads(out.read_text())
    validate_chrome_trace(from_file)
    assert main(["export", str(log), "--format", "chrome"]) == 0
    assert json.loads(capsys.readouterr().out) == from_file


def test_prometheus_exposition(log: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("prometheus_client", reason="the 'prometheus' extra is not installed")
    assert main(["export", str(log), "--format", "prometheus", "--model-name", "demo"]) == 0
    text = capsys.readouterr().out
    labels = 'engine="engine-0",finished_reason="length",model_name="demo"'
    assert f"vllm:request_success_total{{{labels}}} 4.0" in text
    assert "vllm:e2e_request_latency_seconds_count" in text


def test_otel_spans_as_otlp_json_end_at_the_log_files_time(
    log: Path, demo_events: list[Event], tmp_path: Path
) -> None:
    pytest.importorskip("opentelemetry.sdk", reason="the 'otel' extra is not installed")
    out = tmp_path / "spans.jsonl"
    assert main(["export", str(log), "--format", "otel", "-o", str(out)]) == 0
    roots = [s for s in otlp_spans(out) if s["name"] == "llm_request"]
    finished = [t for t in build_timelines(demo_events).values() if t.finish_reason != "abort"]
    assert len(roots) == len(finished)
    last_end = max(int(s["endTimeUnixNano"]) for s in roots)
    # The last event finishes the last request, so its span ends at the file's time.
    assert abs(last_end - log.stat().st_mtime_ns) < 1_000_000


def test_otel_epoch_option(log: Path, tmp_path: Path) -> None:
    pytest.importorskip("opentelemetry.sdk", reason="the 'otel' extra is not installed")
    out = tmp_path / "spans.jsonl"
    assert main(["export", str(log), "--format", "otel", "-o", str(out), "--epoch-ns", "0"]) == 0
    first = min(int(s["startTimeUnixNano"]) for s in otlp_spans(out))
    assert first < 10**9  # within a second of 1970-01-01


@pytest.mark.parametrize(
    ("fmt", "module", "extra"),
    [
        ("otel", "opentelemetry.sdk.trace.export", "otel"),
        ("prometheus", "prometheus_client", "prometheus"),
    ],
)
def test_a_missing_extra_is_named(
    log: Path,
    fmt: str,
    module: str,
    extra: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setitem(sys.modules, module, None)  # makes the import fail, as if not installed
    assert main(["export", str(log), "--format", fmt]) == 2
    assert f"needs the '{extra}' extra" in capsys.readouterr().err


def test_otel_without_an_exporter_is_a_clear_error(
    log: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("opentelemetry.sdk", reason="the 'otel' extra is not installed")
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "jaeger_nowhere")
    assert main(["export", str(log), "--format", "otel"]) == 2
    assert "the trace exporter 'jaeger_nowhere'" in capsys.readouterr().err


@pytest.mark.parametrize("suffix", [".svg", ".html"])
def test_plot(log: Path, tmp_path: Path, suffix: str, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / f"timeline{suffix}"
    assert main(["plot", str(log), "-o", str(out), "--title", "demo run"]) == 0
    assert f"{suffix[1:].upper()} timeline" in capsys.readouterr().out
    assert "demo run" in out.read_text()


def test_user_errors_exit_2(log: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plot", str(log), "-o", str(tmp_path / "t.png")]) == 2
    assert "use .svg or .html" in capsys.readouterr().err
    assert main(["export", str(tmp_path / "none.jsonl"), "--format", "chrome"]) == 3
    assert "no such log file" in capsys.readouterr().err


def test_lenient_reading_keeps_what_precedes_a_corrupt_line(
    log: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = log.read_text().splitlines()
    lines[40] = "{not json"
    log.write_text("\n".join(lines) + "\n")
    out = tmp_path / "t.svg"
    assert main(["plot", str(log), "-o", str(out)]) == 3
    assert main(["plot", str(log), "-o", str(out), "--lenient"]) == 0
    err = capsys.readouterr().err
    assert "skipped" in err and "reading stops there" in err
    assert out.read_text().startswith("<svg")


def test_plot_draws_the_first_requests_and_says_how_many_it_left_out(
    log: Path, demo_events: list[Event], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "t.svg"
    assert main(["plot", str(log), "-o", str(out), "--limit", "2"]) == 0
    assert "drew 2 of 5 requests (the first added)" in capsys.readouterr().out
    drawn = set(re.findall(r'data-request="([^"]+)"', out.read_text()))
    assert drawn == {"r0", "r1"}
    # Within the limit nothing is left out, and the picture is the whole log's.
    assert main(["plot", str(log), "-o", str(out)]) == 0
    assert "drew" not in capsys.readouterr().out
    assert out.read_text() == timeline_svg(demo_events)
    assert main(["plot", str(log), "-o", str(out), "--limit", "-1"]) == 2


def test_the_first_requests_keep_their_whole_timelines(demo_events: list[Event]) -> None:
    whole = build_timelines(demo_events)
    part = picture_of(demo_events, 2)
    assert part.labels == ("r0", "r1") and part.num_left_out == 3
    for t in part.timelines:
        assert t == whole[t.request_id]
    # The picture of some requests ends with their last step, not the log's.
    assert part.last_step == max(t.last_step for t in part.timelines)
    everything = picture_of(demo_events, 0)
    assert everything.num_left_out == 0
    assert sorted(everything.timelines, key=lambda t: t.added_seq) == list(whole.values())
    with pytest.raises(ValueError, match="limit must be 0"):
        picture_of(demo_events, -1)


def test_a_failed_export_leaves_no_half_written_file(
    log: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = log.read_text().splitlines()
    lines[100] = "{not json"
    log.write_text("\n".join(lines) + "\n")
    out = tmp_path / "trace.json"
    assert main(["export", str(log), "--format", "chrome", "-o", str(out)]) == 3
    assert "not valid JSON" in capsys.readouterr().err
    assert not out.exists()
    assert main(["export", str(log), "--format", "chrome", "-o", str(out), "--lenient"]) == 0
    validate_chrome_trace(json.loads(out.read_text()))


def test_the_otel_epoch_comes_from_the_last_readable_line(
    log: Path, demo_events: list[Event]
) -> None:
    assert last_ts_ns(log) == demo_events[-1].ts_ns
    text = log.read_text()
    log.write_text(text + text.splitlines()[3][:20])  # a last line cut short by a crash
    assert last_ts_ns(log) == demo_events[-1].ts_ns
