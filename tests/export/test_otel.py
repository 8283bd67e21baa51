"""OpenTelemetry spans: one llm_request per finished request, vLLM's attributes, phase children."""

from __future__ import annotations

import importlib
import io
import itertools
import json
from collections.abc import Iterator
from typing import Any

import pytest

pytest.importorskip("opentelemetry.sdk", reason="the 'otel' extra is not installed")

from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import ConsoleSpanExporter, SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from lifecycle_trace.export.otel import (
    SPAN_NAME,
    ExporterUnavailableError,
    export_spans,
    span_exporter_from_env,
    tracer_provider,
)
from lifecycle_trace.fold.timeline import build_timelines
from minivllm.events import Event, StatusChanged, StepFinished
from minivllm.request import RequestStatus


def _spans(events: list[Event], epoch_ns: int = 0) -> tuple[int, list[ReadableSpan]]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    n = export_spans(events, provider.get_tracer("test"), epoch_ns=epoch_ns)
    provider.shutdown()
    return n, list(exporter.get_finished_spans())


def _attrs(span: ReadableSpan) -> dict[str, Any]:
    return dict(span.attributes or {})


def test_one_llm_request_span_per_finished_request(demo_events: list[Event]) -> None:
    n, spans = _spans(demo_events)
    roots = [s for s in spans if s.parent is None]
    timelines = build_timelines(demo_events)
    assert n == len(roots) == len(timelines)
    assert {s.name for s in roots} == {SPAN_NAME}
    assert all(s.kind == SpanKind.SERVER for s in roots)
    by_id = {_attrs(s)["gen_ai.request.id"]: s for s in roots}
    assert set(by_id) == set(timelines)
    for rid, t in timelines.items():
        span, a = by_id[rid], _attrs(by_id[rid])
        assert (span.start_time, span.end_time) == (t.arrival_ns, t.finished_ns)
        assert a["gen_ai.usage.prompt_tokens"] == a["gen_ai.usage.input_tokens"]
        assert a["gen_ai.usage.input_tokens"] == t.num_prompt_tokens
        assert a["gen_ai.usage.completion_tokens"] == a["gen_ai.usage.output_tokens"]
        assert a["gen_ai.usage.output_tokens"] == t.num_output_tokens
        assert a["gen_ai.request.max_tokens"] == t.max_tokens
        assert a["gen_ai.response.finish_reasons"] == (t.finish_reason,)
        assert t.e2e_time_ns is not None and t.queue_time_ns is not None
        assert a["gen_ai.latency.e2e"] == pytest.approx(t.e2e_time_ns / 1e9)
        assert a["gen_ai.latency.time_in_queue"] == pytest.approx(t.queue_time_ns / 1e9)
        assert t.ttft_ns is not None
        assert a["gen_ai.latency.time_to_first_token"] == pytest.approx(t.ttft_ns / 1e9)
        assert a["minivllm.num_preemptions"] == t.num_preemptions


def test_children_are_the_phases_and_tile_the_request(demo_events: list[Event]) -> None:
    _, spans = _spans(demo_events)
    roots = {s.context.span_id: s for s in spans if s.parent is None}
    children: dict[int, list[ReadableSpan]] = {}
    for s in spans:
        if s.parent is not None:
            children.setdefault(s.parent.span_id, []).append(s)
    names: set[str] = set()
    for span_id, root in roots.items():
        kids = sorted(children[span_id], key=lambda s: s.start_time or 0)
        assert kids[0].start_time == root.start_time and kids[-1].end_time == root.end_time
        for a, b in itertools.pairwise(kids):
            assert a.end_time == b.start_time
        assert all(k.context.trace_id == root.context.trace_id for k in kids)
        names.update(k.name for k in kids)
    assert names == {"queued", "prefill", "decode", "preempted"}


def test_epoch_shifts_every_span(demo_events: list[Event]) -> None:
    _, plain = _spans(demo_events)
    _, shifted = _spans(demo_events, epoch_ns=1_700_000_000_000_000_000)
    assert [s.start_time for s in shifted] == [
        (s.start_time or 0) + 1_700_000_000_000_000_000 for s in plain
    ]


def test_unfinished_requests_get_no_span(demo_events: list[Event]) -> None:
    cut = demo_events[: len(demo_events) // 2]
    finished = [t for t in build_timelines(cut).values() if t.finished]
    n, spans = _spans(cut)
    assert n == len(finished) == len([s for s in spans if s.parent is None])
    assert len(finished) < len(build_timelines(cut))


def test_console_exporter_from_env(
    demo_events: list[Event], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "console")
    monkeypatch.setenv("OTEL_SERVICE_NAME", "lab-engine")
    exporter = span_exporter_from_env()
    assert isinstance(exporter, ConsoleSpanExporter)
    out = io.StringIO()
    provider = tracer_provider(ConsoleSpanExporter(out=out))
    export_spans(demo_events, provider.get_tracer("test"))
    provider.shutdown()
    text = out.getvalue()
    assert '"name": "llm_request"' in text
    assert "lab-engine" in text


def test_service_name_defaults_to_minivllm(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OTEL_SERVICE_NAME", raising=False)
    monkeypatch.delenv("OTEL_RESOURCE_ATTRIBUTES", raising=False)
    provider = tracer_provider(InMemorySpanExporter())
    assert provider.resource.attributes["service.name"] == "minivllm"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"OTEL_TRACES_EXPORTER": "zipkin"}, "not supported here"),
        ({"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "carrier"}, "carrier"),
    ],
)
def test_unsupported_exporters_are_refused(
    env: dict[str, str], message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(ExporterUnavailableError, match=message):
        span_exporter_from_env()


def test_missing_otlp_exporter_names_the_package(monkeypatch: pytest.MonkeyPatch) -> None:
    try:
        importlib.import_module("opentelemetry.exporter.otlp.proto.http.trace_exporter")
    except ImportError:
        pass
    else:
        pytest.skip("the OTLP HTTP exporter is installed here")
    monkeypatch.delenv("OTEL_TRACES_EXPORTER", raising=False)
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_PROTOCOL", raising=False)
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", raising=False)
    with pytest.raises(ExporterUnavailableError, match="opentelemetry-exporter-otlp-proto-http"):
        span_exporter_from_env()


def test_console_json_lines_parse(demo_events: list[Event]) -> None:
    out = io.StringIO()
    exporter = ConsoleSpanExporter(out=out, formatter=lambda s: s.to_json(indent=None) + "\n")
    provider = tracer_provider(exporter)
    export_spans(demo_events, provider.get_tracer("test"))
    provider.shutdown()
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    roots = [x for x in lines if x["name"] == SPAN_NAME]
    assert len(roots) == len(build_timelines(demo_events))


def test_each_request_is_exported_at_the_end_of_its_finishing_step(
    demo_events: list[Event],
) -> None:
    read: list[Event] = []

    def reading() -> Iterator[Event]:
        for e in demo_events:
            read.append(e)
            yield e

    ended_after: dict[str, Event] = {}

    class Stamp(SpanProcessor):
        def on_end(self, span: ReadableSpan) -> None:
            if span.name == SPAN_NAME:
                ended_after[str(_attrs(span)["gen_ai.request.id"])] = read[-1]

    provider = TracerProvider()
    provider.add_span_processor(Stamp())
    assert export_spans(reading(), provider.get_tracer("test")) == len(ended_after)
    provider.shutdown()
    finish_step = {
        e.request_id: e.step
        for e in demo_events
        if isinstance(e, StatusChanged) and RequestStatus.is_finished(e.new_status)
    }
    assert set(ended_after) == set(finish_step)
    for rid, last in ended_after.items():
        # Emitted from the fold as the step ends, not after the whole log was read.
        assert isinstance(last, StepFinished) and last.step == finish_step[rid]
