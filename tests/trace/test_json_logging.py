"""The structlog JSON event logger: a line per event, levels, and the application's logging setup.

Every test starts from an unconfigured process: no structlog configuration, no
handler on the root logger (pytest's own capture handlers are taken off), no
level on the library's loggers and no MINIVLLM_* logging variable.
"""

from __future__ import annotations

import io
import json
import logging
import sys
import time
from collections.abc import Callable
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
import structlog
from structlog.testing import capture_logs

from lifecycle_trace.log import EventLog
from lifecycle_trace.logging import EVENT_LOGGER_NAME
from lifecycle_trace.logging import ApplicationJsonLogger
from lifecycle_trace.logging import EventBoundLogger
from lifecycle_trace.logging import JsonLogObserver
from lifecycle_trace.logging import expand_event
from lifecycle_trace.logging import json_processors
from lifecycle_trace.logging import make_json_logger
from minivllm import LLM
from minivllm.engine.llm_engine import LLMEngine
from minivllm.events import Event
from minivllm.events import StatusChanged
from minivllm.events import event_to_dict
from minivllm.sampling_params import SamplingParams

LIBRARY_LOGGERS = ("lifecycle_trace", EVENT_LOGGER_NAME)


class _WithoutPytestHandlers(list[logging.Handler]):
    """The root logger's handler list, refusing the capture handlers pytest adds around a test."""

    def append(self, handler: logging.Handler) -> None:
        if not type(handler).__module__.startswith("_pytest"):
            super().append(handler)


@pytest.fixture(autouse=True)
def unconfigured(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    root = logging.getLogger()
    monkeypatch.setattr(root, "handlers", _WithoutPytestHandlers())
    monkeypatch.setattr(root, "level", logging.WARNING)
    for name in LIBRARY_LOGGERS:
        logger = logging.getLogger(name)
        monkeypatch.setattr(logger, "handlers", [])
        monkeypatch.setattr(logger, "level", logging.NOTSET)
        monkeypatch.setattr(logger, "propagate", True)
    for variable in ("MINIVLLM_LOGGING_LEVEL", "MINIVLLM_CONFIGURE_LOGGING", "MINIVLLM_OBSERVERS"):
        monkeypatch.delenv(variable, raising=False)
    logging.Logger.manager._clear_cache()
    structlog.reset_defaults()
    yield
    structlog.reset_defaults()
    logging.Logger.manager._clear_cache()


def _run(engine: LLMEngine, between_steps: Callable[[], None] | None = None) -> EventLog:
    log = EventLog()
    engine.bus.subscribe(log)
    engine.add_request("hello", SamplingParams(max_tokens=3))
    engine.add_request("world!", SamplingParams(max_tokens=2))
    while engine.has_unfinished_requests():
        engine.step()
        if between_steps is not None:
            between_steps()
            between_steps = None
    return log


def _records(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines()]


def _assert_one_record_per_event(records: list[dict[str, Any]], events: list[Event]) -> None:
    assert [r["seq"] for r in records] == [e.seq for e in events]
    for record, event in zip(records, events, strict=True):
        fields = event_to_dict(event)
        assert {k: record[k] for k in fields} == fields
        # Never JSON inside JSON: no value is itself a rendered object.
        assert not any(isinstance(v, str) and v.startswith("{") for v in record.values())


# -- the line -------------------------------------------------------------------------------


@pytest.mark.parametrize("stream_type", [io.BytesIO, io.StringIO])
def test_one_json_line_per_event_in_the_logs_key_order(stream_type: type) -> None:
    stream = stream_type()
    engine = LLMEngine(raise_observer_errors=True)
    engine.bus.subscribe(make_json_logger(stream))
    started = time.time()
    log = _run(engine)
    ended = time.time()
    raw = stream.getvalue()
    lines = (raw.encode() if isinstance(raw, str) else raw).splitlines()
    assert len(lines) == len(log)
    for line, event in zip(lines, log, strict=True):
        record = orjson.loads(line)
        # The stored log's keys in its order, then structlog's three.
        assert list(record) == [*event_to_dict(event), "event", "level", "timestamp"]
        assert list(record)[:4] == ["type", "seq", "step", "ts_ns"]
        assert record["event"] == event.tag
        assert record["level"] == ("info" if isinstance(event, StatusChanged) else "debug")
        assert started <= record["timestamp"] <= ended  # wall clock, UNIX seconds
        assert {k: record[k] for k in event_to_dict(event)} == event_to_dict(event)


def test_the_one_call_renderer_gives_what_the_usual_chain_gives() -> None:
    log = _run(LLMEngine())
    usual = [
        expand_event,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt=None, utc=True),
        structlog.processors.JSONRenderer(),
    ]
    records: dict[tuple[str, bool], list[dict[str, object]]] = {}
    for chain_name, chain in (("fast", json_processors()), ("usual", usual)):
        for expand in (False, True):
            stream = io.StringIO()
            logger = structlog.wrap_logger(structlog.WriteLogger(stream), processors=chain)
            observer = JsonLogObserver(logger, expand=expand)
            for event in log:
                observer(event)
            records[chain_name, expand] = [
                {k: v for k, v in orjson.loads(line).items() if k != "timestamp"}
                for line in stream.getvalue().splitlines()
            ]
    first = records["usual", False]
    assert all(r == first for r in records.values())
    assert [r["seq"] for r in first] == [e.seq for e in log]
    assert {"event", "level", "type", "v"} <= set(first[0])


def test_the_direct_stream_is_flushed_at_each_step_end() -> None:
    class CountingStream(io.BytesIO):
        flushes = 0

        def flush(self) -> None:
            self.flushes += 1
            super().flush()

    stream = CountingStream()
    engine = LLMEngine(raise_observer_errors=True)
    engine.bus.subscribe(make_json_logger(stream))
    _run(engine)
    assert stream.flushes == engine.step_index > 0


def test_observer_needs_a_logger() -> None:
    with pytest.raises(TypeError, match=r"debug\(\) method"):
        JsonLogObserver(object())


def _drop_counters(logger: object, method_name: str, event_dict: dict[str, object]) -> object:
    if event_dict["event"] == "counter_updated":
        raise structlog.DropEvent
    return event_dict


@pytest.mark.parametrize("expand", [True, False])
def test_a_processor_dropping_an_event_drops_its_line_and_nothing_else(expand: bool) -> None:
    stream = io.BytesIO()
    processors = [_drop_counters, *json_processors(as_bytes=True)]
    logger = EventBoundLogger(structlog.BytesLogger(stream), processors=processors, context={})
    observer = JsonLogObserver(logger, expand=expand)
    engine = LLMEngine(raise_observer_errors=True)
    engine.bus.subscribe(observer)
    log = _run(engine)
    tags = [orjson.loads(line)["event"] for line in stream.getvalue().splitlines()]
    assert tags == [e.tag for e in log if e.tag != "counter_updated"]
    assert "step_finished" in tags and engine.bus.errors == {}


def test_bound_context_and_the_event_share_one_json_object() -> None:
    stream = io.BytesIO()
    logger = EventBoundLogger(
        structlog.BytesLogger(stream), processors=json_processors(as_bytes=True), context={}
    )
    observer = JsonLogObserver(logger.bind(run="r1"), expand=True)
    engine = LLMEngine(raise_observer_errors=True)
    engine.bus.subscribe(observer)
    log = _run(engine)
    records = [orjson.loads(line) for line in stream.getvalue().splitlines()]
    assert len(records) == len(log)
    for record, event in zip(records, log, strict=True):
        assert record["run"] == "r1" and record["event"] == event.tag
        assert {k: record[k] for k in event_to_dict(event)} == event_to_dict(event)


# -- levels ---------------------------------------------------------------------------------


def test_info_logs_only_status_changes_and_debug_every_event(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    stream = io.StringIO()
    engine = LLMEngine(observers=[make_json_logger(stream, level="INFO")])
    log = _run(engine)
    status_changes = [e for e in log if isinstance(e, StatusChanged)]
    _assert_one_record_per_event(_records(stream.getvalue()), status_changes)

    for level, expected in (("INFO", status_changes), ("debug", list(log))):
        monkeypatch.setenv("MINIVLLM_LOGGING_LEVEL", level)
        capsys.readouterr()
        log = _run(LLMEngine())  # the environment attaches the json-log observer
        records = _records(capsys.readouterr().err)
        expected = list(log) if level == "debug" else [e for e in log if e.tag == "status_changed"]
        _assert_one_record_per_event(records, expected)
        assert {r["level"] for r in records} <= {"info", "debug"}


@pytest.mark.parametrize("level", ["WARNING", "ERROR", "CRITICAL"])
def test_levels_above_info_attach_nothing(
    level: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MINIVLLM_LOGGING_LEVEL", level)
    _run(LLMEngine())
    assert capsys.readouterr().err == ""


def test_invalid_level_names_and_switches_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MINIVLLM_LOGGING_LEVEL", "VERBOSE")
    with pytest.raises(ValueError, match=r"MINIVLLM_LOGGING_LEVEL must be one of .*got 'VERBOSE'"):
        LLMEngine()
    monkeypatch.setenv("MINIVLLM_LOGGING_LEVEL", "DEBUG")
    monkeypatch.setenv("MINIVLLM_CONFIGURE_LOGGING", "yes")
    with pytest.raises(ValueError, match="MINIVLLM_CONFIGURE_LOGGING must be 0 or 1, got 'yes'"):
        LLMEngine()
    with pytest.raises(ValueError, match=r"level must be one of .*got 'loud'"):
        make_json_logger(io.StringIO(), level="loud")


def test_a_parent_logger_at_warning_is_honoured_set_before_or_after(
    capsys: pytest.CaptureFixture[str],
) -> None:
    logging.getLogger("lifecycle_trace").setLevel(logging.WARNING)
    _run(LLMEngine(observers=[make_json_logger()]))
    assert capsys.readouterr().err == ""

    logging.getLogger("lifecycle_trace").setLevel(logging.NOTSET)
    engine = LLMEngine(observers=[make_json_logger()])
    log = _run(engine, lambda: logging.getLogger("lifecycle_trace").setLevel(logging.WARNING))
    # Before it was set, every event; from the next step on, none.
    records = _records(capsys.readouterr().err)
    first_step_end = next(e.seq for e in log if e.tag == "step_finished")
    assert [r["seq"] for r in records] == [e.seq for e in log if e.seq <= first_step_end]


# -- the application's stdlib logging ------------------------------------------------------


def test_nothing_configured_prints_lines_to_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    log = _run(LLMEngine(observers=[make_json_logger()]))
    captured = capsys.readouterr()
    assert captured.out == ""
    _assert_one_record_per_event(_records(captured.err), list(log))


def test_the_applications_levels_decide_once_it_configured_logging(
    capsys: pytest.CaptureFixture[str],
) -> None:
    app = io.StringIO()
    logging.basicConfig(stream=app, level=logging.INFO, format="%(message)s")
    log = _run(LLMEngine(observers=[make_json_logger(level="DEBUG")]))
    # The root logger at INFO: the status changes only, though the observer asked for all.
    _assert_one_record_per_event(
        _records(app.getvalue()), [e for e in log if isinstance(e, StatusChanged)]
    )
    assert capsys.readouterr().err == ""


def test_configure_logging_0_leaves_it_all_to_the_application(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MINIVLLM_CONFIGURE_LOGGING", "0")
    _run(LLMEngine(observers=[make_json_logger()]))
    assert capsys.readouterr().err == ""  # nothing configured: nowhere

    app = io.StringIO()
    logging.basicConfig(stream=app, level=logging.INFO, format="%(levelname)s %(message)s")
    log = _run(LLMEngine(observers=[make_json_logger()]))
    lines = app.getvalue().splitlines()
    # The root logger's INFO decides: status changes only.
    assert all(line.startswith("INFO {") for line in lines)
    records = [json.loads(line.removeprefix("INFO ")) for line in lines]
    _assert_one_record_per_event(records, [e for e in log if isinstance(e, StatusChanged)])
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("order", ["logging first", "engine first"])
def test_stdlib_configuration_in_either_order_gets_each_line_once(
    order: str, capsys: pytest.CaptureFixture[str]
) -> None:
    app = io.StringIO()

    def configure() -> None:
        logging.basicConfig(stream=app, level=logging.DEBUG, format="APP %(name)s %(message)s")

    if order == "logging first":
        configure()
    engine = LLMEngine(observers=[make_json_logger()])
    log = _run(engine, configure if order == "engine first" else None)
    app_lines = app.getvalue().splitlines()
    assert all(line.startswith(f"APP {EVENT_LOGGER_NAME} {{") for line in app_lines)
    app_records = [json.loads(line.split(" ", 2)[2]) for line in app_lines]
    stderr_records = _records(capsys.readouterr().err)
    # Every event exactly once: before the configuration on stderr, after it in the app's log.
    _assert_one_record_per_event(stderr_records + app_records, list(log))
    if order == "logging first":
        assert stderr_records == []
    else:
        assert stderr_records and app_records


# -- the application's structlog -----------------------------------------------------------


def _structlog_with_stdlib(stream: io.StringIO) -> None:
    """structlog's documented stdlib setup: one JSON renderer, in a ProcessorFormatter."""
    shared = [
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso"),
    ]
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
    )
    handler = logging.StreamHandler(stream)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.JSONRenderer(),
            ],
        )
    )
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)


def _processor_formatter_only(stream: io.StringIO) -> None:
    """No structlog.configure: only stdlib handlers whose formatter is structlog's."""
    logging.getLogger().setLevel(logging.DEBUG)
    handler = logging.StreamHandler(stream)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[structlog.stdlib.add_log_level, structlog.stdlib.add_logger_name],
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.JSONRenderer(),
            ],
        )
    )
    logging.getLogger().addHandler(handler)


def _structlog_alone(stream: io.StringIO) -> None:
    """structlog without stdlib: its own logger writing JSON to the application's stream."""
    structlog.configure(
        processors=[structlog.processors.add_log_level, structlog.processors.JSONRenderer()],
        logger_factory=structlog.WriteLoggerFactory(stream),
    )


@pytest.mark.parametrize(
    "setup", [_structlog_with_stdlib, _processor_formatter_only, _structlog_alone]
)
@pytest.mark.parametrize("order", ["configuration first", "engine first"])
def test_structlog_configuration_in_either_order_renders_each_event_once(
    setup: Callable[[io.StringIO], None], order: str, capsys: pytest.CaptureFixture[str]
) -> None:
    app = io.StringIO()
    if order == "configuration first":
        setup(app)
        engine = LLMEngine(observers=[make_json_logger()])
        log = list(_run(engine))
        skipped: list[Event] = []
    else:
        engine = LLMEngine(observers=[make_json_logger()])
        log = list(_run(engine, lambda: setup(app)))
        first_step_end = next(e.seq for e in log if e.tag == "step_finished")
        skipped = [e for e in log if e.seq <= first_step_end]
    records = _records(app.getvalue())
    _assert_one_record_per_event(records, [e for e in log if e not in skipped])
    for record, event in zip(records, log[len(skipped) :], strict=True):
        assert record["event"] == event.tag
        assert record["level"] == ("info" if isinstance(event, StatusChanged) else "debug")
        if setup is not _structlog_alone:
            assert record["logger"] == EVENT_LOGGER_NAME
    # Before the application configured anything, the lines went to stderr, once.
    _assert_one_record_per_event(_records(capsys.readouterr().err), skipped)


def test_capture_logs_sees_every_event() -> None:
    # A user's test: structlog's capture_logs is a configuration, so the events go to it.
    engine = LLMEngine(observers=[make_json_logger()])
    with capture_logs() as logs:
        log = _run(engine)
    assert [entry["event"] for entry in logs] == [e.tag for e in log]
    admitted = [e["request_id"] for e in logs if e.get("new_status") == "RUNNING"]
    assert admitted == ["0", "1"]
    assert {entry["log_level"] for entry in logs} == {"debug", "info"}
    # A logger of the user's own choosing works too.
    with capture_logs() as logs:
        log = _run(LLMEngine(observers=[JsonLogObserver(structlog.get_logger())]))
    assert [entry["event"] for entry in logs] == [e.tag for e in log]


# -- progress output -------------------------------------------------------------------------


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize("observer", ["stderr directly", "through the application"])
def test_no_progress_bar_on_the_stream_with_json_lines(
    observer: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    if observer == "stderr directly":
        json_log = make_json_logger(terminal)
    else:
        logging.basicConfig(stream=terminal, level=logging.DEBUG, format="%(message)s")
        json_log = make_json_logger()
        assert isinstance(json_log, ApplicationJsonLogger)
    LLM(observers=[json_log]).generate([str(i) for i in range(10)], SamplingParams(max_tokens=2))
    lines = terminal.getvalue().splitlines()
    assert len(lines) > 10
    assert all(isinstance(json.loads(line), dict) for line in lines)
