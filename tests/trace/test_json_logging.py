"""The structlog JSON event logger: a line per event, stdlib cooperation, capture_logs, env."""

from __future__ import annotations

import io
import logging
import time

import orjson
import pytest
import structlog
from structlog.testing import capture_logs

from lifecycle_trace.eventlog import EventLog
from lifecycle_trace.logging import (
    EVENT_LOGGER_NAME,
    JsonLogObserver,
    attach_json_logger,
    expand_event,
    json_processors,
    make_json_logger,
)
from minivllm.engine.llm_engine import LLMEngine
from minivllm.events import event_to_dict
from minivllm.sampling_params import SamplingParams


def _run(engine: LLMEngine) -> EventLog:
    log = EventLog()
    engine.bus.subscribe(log)
    engine.add_request("hello", SamplingParams(max_tokens=3))
    engine.add_request("world!", SamplingParams(max_tokens=2))
    while engine.has_unfinished_requests():
        engine.step()
    return log


@pytest.mark.parametrize("stream_type", [io.BytesIO, io.StringIO])
def test_one_json_line_per_event_with_every_field(stream_type: type) -> None:
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
        assert record["event"] == event.tag
        assert record["level"] == "debug"
        assert started <= record["timestamp"] <= ended  # wall clock, UNIX seconds
        assert {k: record[k] for k in event_to_dict(event)} == event_to_dict(event)
    requests = [orjson.loads(x) for x in lines if b'"request_id"' in x]
    assert {r["request_id"] for r in requests} == {"0", "1"}


def test_stdlib_logging_decides_where_lines_go_and_whether_they_are_built(
    caplog: pytest.LogCaptureFixture,
) -> None:
    engine = LLMEngine(raise_observer_errors=True)
    subscription = attach_json_logger(engine)
    with caplog.at_level(logging.DEBUG, logger=EVENT_LOGGER_NAME):
        log = _run(engine)
    records = [r for r in caplog.records if r.name == EVENT_LOGGER_NAME]
    assert len(records) == len(log)
    assert [orjson.loads(r.getMessage())["seq"] for r in records] == [e.seq for e in log]
    subscription.unsubscribe()

    caplog.clear()
    engine = LLMEngine(raise_observer_errors=True)
    attach_json_logger(engine)
    with caplog.at_level(logging.WARNING, logger=EVENT_LOGGER_NAME):
        _run(engine)
    assert [r for r in caplog.records if r.name == EVENT_LOGGER_NAME] == []


def test_capture_logs_sees_every_event() -> None:
    # A user's test: route the observer through structlog's global configuration.
    engine = LLMEngine(observers=[JsonLogObserver(structlog.get_logger())])
    with capture_logs() as logs:
        log = _run(engine)
    assert [entry["event"] for entry in logs] == [e.tag for e in log]
    admitted = [e["request_id"] for e in logs if e.get("new_status") == "RUNNING"]
    assert admitted == ["0", "1"]
    assert all(entry["log_level"] == "debug" for entry in logs)


def test_debug_logging_level_env_attaches_the_logger(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("MINIVLLM_LOGGING_LEVEL", "DEBUG")
    engine = LLMEngine(raise_observer_errors=True)
    with caplog.at_level(logging.DEBUG, logger=EVENT_LOGGER_NAME):
        log = _run(engine)
    lines = [orjson.loads(r.getMessage()) for r in caplog.records if r.name == EVENT_LOGGER_NAME]
    assert [x["type"] for x in lines] == [e.tag for e in log]


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
