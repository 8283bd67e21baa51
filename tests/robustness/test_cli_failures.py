"""The command lines never show a traceback: one line, and an exit status that means one thing.

0 done, 1 found violations or differences, 2 usage, 3 an input or output
failed, 130 interrupted (4, an internal error, is never expected).
"""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import time
import warnings
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from lifecycle_trace.cli import main
from lifecycle_trace.cli._open import printed_warnings
from lifecycle_trace.log import EventLog
from lifecycle_trace.log import JsonlWriter
from lifecycle_trace.log import SkippedLineWarning
from lifecycle_trace.log import write_jsonl
from minivllm import LLMEngine
from minivllm import SamplingParams
from minivllm.cli import main as minivllm_main

BIN = Path(sys.executable).parent


def _one_error_line(err: str, prog: str = "lifecycle-trace") -> str:
    lines = [
        line
        for line in err.splitlines()
        if (line.startswith(prog) and ": error: " in line) or line.startswith(f"{prog}: ")
    ]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


@pytest.mark.parametrize(
    ("make", "says"),
    [
        (lambda tmp: tmp, "is a directory"),
        (lambda tmp: tmp / "missing.jsonl", "no such log file"),
        (lambda tmp: Path("/dev/zero"), "is a device"),
        (lambda tmp: Path("/dev/null"), "is a device"),
    ],
)
@pytest.mark.parametrize("command", ["show", "check", "stats", "plot", "export", "slice", "merge"])
def test_unreadable_inputs_fail_in_one_line(
    command: str, make: object, says: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = make(tmp_path)  # type: ignore[operator]
    argv = {
        "plot": ["plot", str(path), "-o", str(tmp_path / "p.svg")],
        "export": ["export", str(path), "--format", "chrome", "-o", str(tmp_path / "c.json")],
        "slice": ["slice", str(path), "--requests", "r0", "-o", str(tmp_path / "s.jsonl")],
        "merge": ["merge", str(path), "-o", str(tmp_path / "m.jsonl")],
    }.get(command, [command, str(path)])
    assert main(argv) == 3
    assert says in _one_error_line(capsys.readouterr().err)


def test_a_file_that_cannot_be_read_names_itself(capsys: pytest.CaptureFixture[str]) -> None:
    if not os.path.exists("/proc/self/mem"):
        pytest.skip("no /proc/self/mem here")
    assert main(["check", "/proc/self/mem"]) == 3
    assert "cannot read /proc/self/mem" in _one_error_line(capsys.readouterr().err)


def test_a_pipe_is_read_like_a_file(good_log: Path) -> None:
    command = f"{BIN / 'lifecycle-trace'} check <(cat {good_log})"
    done = subprocess.run(["bash", "-c", command], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "no invariant violated" in done.stdout


@pytest.mark.parametrize("lenient", [False, True])
@pytest.mark.parametrize("content", [b"", b"\n\n", b"\x00\xff random bytes\n", b'{"a": 1}\n'])
def test_check_on_a_log_without_events_is_an_input_failure(
    content: bytes, lenient: bool, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "nothing.jsonl"
    path.write_bytes(content)
    assert main(["check", str(path), *(["--lenient"] if lenient else [])]) == 3
    out, err = capsys.readouterr()
    assert "no invariant violated" not in out
    _one_error_line(err.replace("lifecycle-trace: warning:", "warning:"))


def _stopped_run(path: Path, steps: int) -> None:
    """A run whose process stopped after ``steps`` steps: whole steps, requests still live."""
    writer = JsonlWriter(path)
    engine = LLMEngine(observers=[writer], max_num_seqs=4, max_model_len=256)
    for i in range(12):
        engine.add_request([65 + i] * 20, SamplingParams(max_tokens=50, ignore_eos=True))
    for _ in range(steps):
        engine.step()
    writer.close()


@pytest.mark.parametrize("steps", [1, 7, 30])
def test_a_log_cut_short_is_reported_once(
    steps: int, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "stopped.jsonl"
    _stopped_run(path, steps)
    assert main(["check", str(path)]) == 3
    out = capsys.readouterr().out
    assert out.count("cut short") == 1
    assert "never finished" not in out and "violation" not in out
    # Cut half-way through a line too: one warning about the line, the same report.
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 30])
    assert main(["check", str(path)]) == 3
    out, err = capsys.readouterr()
    assert out.count("cut short") == 1 and "never finished" not in out
    assert err.count("\n") == 1 and "last line is cut short" in err


def test_a_cut_short_log_with_real_damage_still_reports_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "stopped.jsonl"
    _stopped_run(path, 7)
    lines = path.read_text().splitlines()
    i = next(i for i, line in enumerate(lines) if '"counter":"num_tokens"' in line)
    lines[i] = lines[i].replace('"new":', '"new":1000,"x":')  # a jump of the token count
    path.write_text("\n".join(lines) + "\n")
    assert main(["check", str(path)]) == 1
    out = capsys.readouterr().out
    assert "cut short" in out and "violation(s)" in out and "never finished" not in out


@pytest.mark.parametrize("epoch", ["-1", str(2**63), str(2**64), str(-(2**70))])
def test_otel_export_refuses_an_epoch_out_of_range(
    epoch: str, good_log: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("opentelemetry.sdk", reason="the 'otel' extra is not installed")
    out = tmp_path / "spans.json"
    assert (
        main(["export", str(good_log), "--format", "otel", "-o", str(out), "--epoch-ns", epoch])
        == 2
    )
    assert "--epoch-ns must be" in _one_error_line(capsys.readouterr().err)
    assert not out.exists()


def test_jsonl_writer_refuses_a_text_stream_and_takes_a_text_streams_buffer() -> None:
    with pytest.raises(TypeError, match="text stream StringIO"):
        JsonlWriter(io.StringIO())
    raw = io.BytesIO()
    text = io.TextIOWrapper(raw, encoding="utf-8")
    engine = LLMEngine(observers=[JsonlWriter(text)], max_model_len=32)
    engine.add_request([1, 2], SamplingParams(max_tokens=2))
    while engine.has_unfinished_requests():
        engine.step()
    assert raw.getvalue().count(b"\n") > 5


def test_plot_keeps_its_picture_valid_xml_whatever_the_request_ids(
    tmp_path: Path,
) -> None:
    log = EventLog()
    engine = LLMEngine(observers=[log], max_model_len=32)
    for rid in ["bell\x07", "esc\x1b[31m", "nul\x00", "<tag & 'q'>", "del\x7f", "tab\tnew\nline"]:
        engine.add_request([1, 2], SamplingParams(max_tokens=2), request_id=rid)
    while engine.has_unfinished_requests():
        engine.step()
    path = tmp_path / "ids.jsonl"
    write_jsonl(log, path)
    for suffix in ("svg", "html"):
        out = tmp_path / f"p.{suffix}"
        assert main(["plot", str(path), "-o", str(out)]) == 0
        text = out.read_text()
        if suffix == "svg":
            ET.fromstring(text)  # raises on a character XML cannot hold
        assert "bell\\x07" in text and "\x07" not in text and "\x00" not in text


@pytest.mark.parametrize("prog", ["lifecycle-trace", "minivllm"])
def test_a_bad_logging_level_is_refused_by_name(
    prog: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MINIVLLM_LOGGING_LEVEL", "garbage")
    if prog == "minivllm":
        status = minivllm_main(["generate", "hi", "--max-tokens", "2"])
    else:
        status = main(["run", "hi", "--max-tokens", "2", "-o", str(tmp_path / "x.jsonl")])
    assert status == 2
    line = _one_error_line(capsys.readouterr().err, prog)
    assert "MINIVLLM_LOGGING_LEVEL" in line and "'garbage'" in line
    assert not (tmp_path / "x.jsonl").exists()


@pytest.mark.parametrize("prog", ["lifecycle-trace", "minivllm"])
def test_help_lists_the_exit_statuses(prog: str, capsys: pytest.CaptureFixture[str]) -> None:
    entry = main if prog == "lifecycle-trace" else minivllm_main
    assert entry(["--help"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "exit status: 0 done; 1 found violations or differences; 2 usage error; 3 an" in out
    assert "130 interrupted" in out


@pytest.mark.parametrize(
    "argv",
    [
        ["show"],
        ["nope"],
        ["show", "x", "--width", "ten"],
        ["export", "x", "--format", "pdf"],
        [],
    ],
)
def test_usage_errors_are_one_line_and_exit_2(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert line.startswith("lifecycle-trace") and "--help" in line


def test_minivllm_failures_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{")
    for argv, status in [
        (["replay", str(bad)], 3),
        (["replay", str(tmp_path)], 3),
        (["replay", "/dev/zero"], 3),
        (["generate", "hi", "--top-p", "nan"], 2),
        (["generate", "hi", "--max-tokens", str(2**64)], 2),
        (["generate", "hi", "--num-gpu-blocks", str(10**12)], 2),
        (["generate"], 2),
    ]:
        assert minivllm_main(argv) == status, argv
        _one_error_line(capsys.readouterr().err, "minivllm")


def _big_log(tmp_path: Path) -> Path:
    path = tmp_path / "big.jsonl"
    argv = ["run", *map(str, range(1000)), "--max-tokens", "4", "--ignore-eos", "-o", str(path)]
    assert main(argv) == 0
    return path


def test_a_closed_pipe_ends_quietly(tmp_path: Path) -> None:
    log = _big_log(tmp_path)
    for args in (["show", str(log), "--limit", "0"], ["export", str(log), "--format", "chrome"]):
        process = subprocess.Popen(
            [str(BIN / "lifecycle-trace"), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        assert process.stdout is not None and process.stderr is not None
        process.stdout.read(100)
        process.stdout.close()  # the reader goes away, as `| head -1` does
        err = process.stderr.read().decode()
        assert process.wait(timeout=60) == 3
        assert err == ""


def test_ctrl_c_is_exit_130_in_one_line_and_leaves_no_output(tmp_path: Path) -> None:
    out = tmp_path / "run.jsonl"
    prompts = [f"prompt {i}" for i in range(3000)]
    argv = ["run", *prompts, "--max-tokens", "1000", "--ignore-eos", "-o", str(out)]
    process = subprocess.Popen(
        [str(BIN / "lifecycle-trace"), *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    # Interrupt once the run is writing its log (a long run: minutes if left alone).
    deadline = time.monotonic() + 60
    while not any(p.stat().st_size for p in tmp_path.glob(".run.jsonl.*.partial")):
        assert time.monotonic() < deadline and process.poll() is None
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 130
    assert err.decode() == "lifecycle-trace: interrupted\n"
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir()] == []


def test_show_and_check_write_control_characters_visibly(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = EventLog()
    engine = LLMEngine(observers=[log], max_model_len=32)
    engine.add_request([1, 2], SamplingParams(max_tokens=2), request_id="red\x1b[31m\x07")
    while engine.has_unfinished_requests():
        engine.step()
    path = tmp_path / "ids.jsonl"
    write_jsonl(log, path)
    assert main(["show", str(path)]) == 0
    out = capsys.readouterr().out
    assert "red\\x1b[31m\\x07" in out and "\x1b" not in out and "\x07" not in out


def test_parquet_row_group_size_is_checked_as_usage(
    good_log: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["export", str(good_log), "--format", "parquet", "-o", str(tmp_path / "pq")]
    assert main([*argv, "--row-group-size", "0"]) == 2
    assert "--row-group-size must be 1 or more" in _one_error_line(capsys.readouterr().err)


def test_spans_that_cannot_be_sent_are_an_output_failure(
    good_log: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip(
        "opentelemetry.exporter.otlp.proto.http.trace_exporter",
        reason="the OTLP/HTTP exporter is not installed",
    )
    import socket

    with socket.socket() as probe:  # a local port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "otlp_proto_http")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", f"http://127.0.0.1:{port}/v1/traces")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "1")
    assert main(["export", str(good_log), "--format", "otel"]) == 3
    line = _one_error_line(capsys.readouterr().err)
    assert "could not be exported by OTLPSpanExporter" in line


@pytest.mark.parametrize("content", [None, b"not an npz file", b"", b"PK\x03\x04 cut short"])
def test_a_weights_file_that_cannot_be_read_is_an_input_failure(
    tmp_path: Path, content: bytes | None, capsys: pytest.CaptureFixture[str]
) -> None:
    weights = tmp_path / "weights.npz"
    if content is not None:
        weights.write_bytes(content)
    out = tmp_path / "run.jsonl"
    assert main(["run", "hi", "--model", str(weights), "-o", str(out)]) == 3
    assert str(weights) in _one_error_line(capsys.readouterr().err)
    assert not out.exists()
    assert minivllm_main(["generate", "hi", "--model", str(weights)]) == 3
    assert str(weights) in _one_error_line(capsys.readouterr().err, "minivllm")


def test_a_model_name_that_is_no_weights_file_is_a_usage_error(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert minivllm_main(["generate", "hi", "--model", "gpt2"]) == 2
    _one_error_line(capsys.readouterr().err, "minivllm")


def test_only_a_readers_warnings_are_printed_as_the_commands_own(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # A library's deprecation raised while a command runs (vLLM's import raises
    # some) is no report of the command's: it goes through the filters in force.
    with pytest.warns(DeprecationWarning, match="from a library"), printed_warnings():
        warnings.warn("from a library", DeprecationWarning, stacklevel=1)
        warnings.warn("x.jsonl:3: bad; skipped (lenient)", SkippedLineWarning, stacklevel=1)
    assert (
        capsys.readouterr().err == "lifecycle-trace: warning: x.jsonl:3: bad; skipped (lenient)\n"
    )
