"""OpenTelemetry: vLLM's llm_request spans, live and from a log, exported as the SDK chooses."""

from __future__ import annotations

import base64
import http.server
import importlib.util
import io
import itertools
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("opentelemetry.sdk", reason="the 'otel' extra is not installed")

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace import SpanProcessor
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.export import ConsoleSpanExporter
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from helpers.export import run_workload_logged
from helpers.scale import write_rolling
from lifecycle_trace.cli import main
from lifecycle_trace.export.otel import SPAN_NAME
from lifecycle_trace.export.otel import ExporterUnavailableError
from lifecycle_trace.export.otel import SpanObserver
from lifecycle_trace.export.otel import configure_tracing
from lifecycle_trace.export.otel import export_spans
from lifecycle_trace.export.otel import span_exporters_from_env
from lifecycle_trace.export.otel import tracer_provider
from lifecycle_trace.export.otlp_json import OtlpJsonSpanExporter
from lifecycle_trace.export.otlp_json import encode_spans
from lifecycle_trace.fold.timeline import build_timelines
from lifecycle_trace.log import write_jsonl
from lifecycle_trace.testing import FakeClock
from minivllm import LLMEngine
from minivllm import SamplingParams
from minivllm.events import Event
from minivllm.events import StatusChanged
from minivllm.events import StepFinished
from minivllm.request import RequestStatus
from minivllm.workload import Workload
from minivllm.workload import WorkloadRequest

OTEL_VARIABLES = (
    "OTEL_TRACES_EXPORTER",
    "OTEL_EXPORTER_OTLP_PROTOCOL",
    "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_SERVICE_NAME",
    "OTEL_RESOURCE_ATTRIBUTES",
    "OTEL_SDK_DISABLED",
)


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


OTLP_HTTP = _installed("opentelemetry.exporter.otlp.proto.http")
OTLP_GRPC = _installed("opentelemetry.exporter.otlp.proto.grpc")
OTLP_PROTO = _installed("opentelemetry.proto.collector.trace.v1.trace_service_pb2")
OTLP_JSON_FILE = _installed("opentelemetry.exporter.otlp.json.file")


@pytest.fixture(autouse=True)
def clean_otel_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in OTEL_VARIABLES:
        monkeypatch.delenv(name, raising=False)


def _spans(events: list[Event], epoch_ns: int = 0) -> tuple[int, list[ReadableSpan]]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    n = export_spans(events, provider.get_tracer("test"), epoch_ns=epoch_ns)
    provider.shutdown()
    return n, list(exporter.get_finished_spans())


def _attrs(span: ReadableSpan) -> dict[str, Any]:
    return dict(span.attributes or {})


def _roots(spans: list[ReadableSpan]) -> list[ReadableSpan]:
    return [s for s in spans if s.parent is None]


def _unaborted(events: list[Event]) -> dict[str, Any]:
    return {
        rid: t
        for rid, t in build_timelines(events).items()
        if t.finished and t.finish_status is not RequestStatus.FINISHED_ABORTED
    }


# -- the spans ---------------------------------------------------------------------------------


def test_one_llm_request_span_per_request_finished_unaborted(demo_events: list[Event]) -> None:
    n, spans = _spans(demo_events)
    roots = _roots(spans)
    timelines = _unaborted(demo_events)
    assert len(timelines) < len(build_timelines(demo_events))  # the demo aborts one
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
        for name, ns in (
            ("e2e", t.e2e_time_ns),
            ("time_in_queue", t.queue_time_ns),
            ("time_to_first_token", t.ttft_ns),
            ("time_in_model_prefill", t.prefill_time_ns),
            ("time_in_model_decode", t.decode_time_ns),
            ("time_in_model_inference", t.inference_time_ns),
        ):
            assert a[f"gen_ai.latency.{name}"] == pytest.approx(ns / 1e9), name
        assert a["minivllm.num_preemptions"] == t.num_preemptions


def test_request_parameters_are_set_as_vllm_sets_them() -> None:
    def request(rid: str, **params: Any) -> WorkloadRequest:
        return WorkloadRequest(rid, [5] * 4, SamplingParams(max_tokens=3, **params))

    events = run_workload_logged(
        Workload(
            {},
            [
                request("warm", temperature=0.7, top_p=0.9),
                request("greedy", temperature=0.0),
                request("aborted", temperature=0.5).__class__(
                    "aborted", [6] * 4, SamplingParams(max_tokens=9, ignore_eos=True), abort=1
                ),
            ],
        )
    )
    _, spans = _spans(events)
    by_id = {_attrs(s)["gen_ai.request.id"]: _attrs(s) for s in _roots(spans)}
    assert set(by_id) == {"warm", "greedy"}  # no span for the aborted request, as in vLLM
    warm, greedy = by_id["warm"], by_id["greedy"]
    assert warm["gen_ai.request.temperature"] == 0.7
    assert warm["gen_ai.request.top_p"] == 0.9
    assert warm["gen_ai.request.n"] == 1
    assert warm["gen_ai.request.max_tokens"] == 3
    # vLLM checks `if req_state.temperature:`, so a greedy request has none.
    assert "gen_ai.request.temperature" not in greedy
    assert greedy["gen_ai.request.top_p"] == 1.0


def test_children_are_the_phases_and_tile_the_request(demo_events: list[Event]) -> None:
    _, spans = _spans(demo_events)
    roots = {s.context.span_id: s for s in _roots(spans)}
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
    n, spans = _spans(cut)
    assert n == len(_unaborted(cut)) == len(_roots(spans))
    assert len(_unaborted(cut)) < len(build_timelines(cut))


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
        if isinstance(e, StatusChanged)
        and RequestStatus.is_finished(e.new_status)
        and e.new_status is not RequestStatus.FINISHED_ABORTED
    }
    assert set(ended_after) == set(finish_step)
    for rid, last in ended_after.items():
        # Emitted from the fold as the step ends, not after the whole log was read.
        assert isinstance(last, StepFinished) and last.step == finish_step[rid]


# -- live ----------------------------------------------------------------------------------------


def test_the_live_observer_emits_spans_as_requests_finish() -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    observer = SpanObserver(provider.get_tracer("live"), epoch_ns=0)
    log: list[Event] = []
    engine = LLMEngine(observers=[log.append, observer], clock=FakeClock(), max_num_seqs=2)
    for i, max_tokens in enumerate((2, 5, 3)):
        engine.add_request(f"r{i}", [7, 8, 9], SamplingParams(max_tokens=max_tokens))
    engine.add_request("gone", [1], SamplingParams(max_tokens=8))
    engine.abort_request("gone")
    while engine.has_unfinished_requests():
        engine.step()
        finished = {
            o
            for o in _unaborted(log)
            if build_timelines(log)[o].finished_step is not None
            and build_timelines(log)[o].finished_step < engine.step_index
        }
        emitted = {_attrs(s)["gen_ai.request.id"] for s in _roots(exporter.get_finished_spans())}
        assert emitted == finished  # each one as soon as its step ended
    assert observer.num_spans == 3
    _, replayed = _spans(log)

    def comparable(spans: list[ReadableSpan]) -> list[tuple[Any, ...]]:
        return sorted((s.name, s.start_time, s.end_time, sorted(_attrs(s).items())) for s in spans)

    assert comparable(list(exporter.get_finished_spans())) == comparable(replayed)


def test_the_otel_observer_entry_point_runs_with_the_environments_exporter(
    tmp_path: Path,
) -> None:
    script = (
        "from minivllm import LLM, SamplingParams\n"
        "LLM().generate(['a', 'b'], SamplingParams(max_tokens=2), use_tqdm=False)\n"
    )
    env = {
        **os.environ,
        "MINIVLLM_OBSERVERS": "otel",
        "OTEL_TRACES_EXPORTER": "console",
        "OTEL_SERVICE_NAME": "lab-engine",
    }
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.count('"name": "llm_request"') == 2
    assert '"service.name": "lab-engine"' in done.stdout


# -- exporters as the SDK chooses them -----------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("none", []),
        ("console", [ConsoleSpanExporter]),
        ("console, console", [ConsoleSpanExporter, ConsoleSpanExporter]),
        ("NONE", []),
    ],
)
def test_otel_traces_exporter_names_the_exporters(
    value: str, expected: list[type], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", value)
    assert [type(e) for e in span_exporters_from_env()] == expected


@pytest.mark.skipif(not OTLP_HTTP, reason="opentelemetry-exporter-otlp-proto-http not installed")
def test_otlp_follows_the_protocol_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "otlp,console")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "http/protobuf")
    assert [type(e) for e in span_exporters_from_env()] == [OTLPSpanExporter, ConsoleSpanExporter]


@pytest.mark.skipif(OTLP_GRPC, reason="the OTLP gRPC exporter is installed here")
def test_the_default_is_otlp_over_grpc_and_a_missing_package_is_named() -> None:
    with pytest.raises(ExporterUnavailableError, match="opentelemetry-exporter-otlp-proto-grpc"):
        span_exporters_from_env()


@pytest.mark.skipif(not OTLP_JSON_FILE, reason="opentelemetry-exporter-otlp-json-file missing")
def test_an_installed_third_party_exporter_is_found_by_its_entry_point(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from opentelemetry.exporter.otlp.json.file.trace_exporter import FileSpanExporter

    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "otlp_json_file")
    assert [type(e) for e in span_exporters_from_env()] == [FileSpanExporter]


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"OTEL_TRACES_EXPORTER": "zipkin_nowhere"}, "'zipkin_nowhere' .* not available"),
        ({"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "carrier"}, "carrier"),
    ],
)
def test_unavailable_exporters_are_refused(
    env: dict[str, str], message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(ExporterUnavailableError, match=message):
        span_exporters_from_env()


def test_every_exporter_is_batched_and_the_service_named(monkeypatch: pytest.MonkeyPatch) -> None:
    provider = tracer_provider([InMemorySpanExporter(), InMemorySpanExporter()])
    processors = provider._active_span_processor._span_processors
    assert [type(p) for p in processors] == [BatchSpanProcessor, BatchSpanProcessor]
    assert provider.resource.attributes["service.name"] == "minivllm"
    monkeypatch.setenv("OTEL_SERVICE_NAME", "lab-engine")
    assert tracer_provider([]).resource.attributes["service.name"] == "lab-engine"
    provider.shutdown()


def test_the_console_exporter_from_the_command_line(
    demo_events: list[Event], tmp_path: Path
) -> None:
    log = tmp_path / "demo.jsonl"
    write_jsonl(demo_events, log)
    env = {**os.environ, "OTEL_TRACES_EXPORTER": "console", "OTEL_SERVICE_NAME": "lab-engine"}
    done = subprocess.run(
        [sys.executable, "-m", "lifecycle_trace", "export", str(log), "--format", "otel"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.count('"name": "llm_request"') == len(_unaborted(demo_events))
    assert '"service.name": "lab-engine"' in done.stdout
    assert "handed to ConsoleSpanExporter" in done.stderr


@pytest.mark.skipif(
    not (OTLP_HTTP and OTLP_PROTO), reason="the OTLP HTTP exporter is not installed"
)
def test_otlp_over_http_sends_batches_not_a_post_per_span(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    received: list[int] = []

    class Collector(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            request = ExportTraceServiceRequest.FromString(body)
            received.append(
                sum(len(s.spans) for r in request.resource_spans for s in r.scope_spans)
            )
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Collector)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        log = write_rolling(tmp_path / "rolling.jsonl", 200)
        monkeypatch.setenv("OTEL_TRACES_EXPORTER", "otlp")
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
        endpoint = f"http://127.0.0.1:{server.server_port}/v1/traces"
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", endpoint)
        assert main(["export", str(log), "--format", "otel"]) == 0
    finally:
        server.shutdown()
        server.server_close()
    reported = int(capsys.readouterr().err.split()[0])
    assert reported == 200
    spans = sum(received)
    assert spans >= 4 * 200  # a root and its phases per request
    assert len(received) <= -(-spans // 512) + 1  # BatchSpanProcessor: 512 spans a request


# -- OTLP/JSON ---------------------------------------------------------------------------------


def _check_otlp_json(request: dict[str, Any]) -> list[dict[str, Any]]:
    """The spans of one ExportTraceServiceRequest line, its OTLP/JSON encoding checked."""
    spans = []
    for resource_spans in request["resourceSpans"]:
        assert {a["key"] for a in resource_spans["resource"]["attributes"]} >= {"service.name"}
        for scope_spans in resource_spans["scopeSpans"]:
            assert scope_spans["scope"]["name"] == "lifecycle_trace"
            for span in scope_spans["spans"]:
                assert len(span["traceId"]) == 32 and int(span["traceId"], 16)
                assert len(span["spanId"]) == 16 and int(span["spanId"], 16)
                assert isinstance(span["startTimeUnixNano"], str)
                assert int(span["endTimeUnixNano"]) >= int(span["startTimeUnixNano"])
                assert span["kind"] in (1, 2)
                spans.append(span)
    return spans


def test_dash_o_writes_otlp_json_lines(demo_events: list[Event], tmp_path: Path) -> None:
    log = tmp_path / "demo.jsonl"
    write_jsonl(demo_events, log)
    out = tmp_path / "spans.otlp.jsonl"
    assert main(["export", str(log), "--format", "otel", "-o", str(out), "--epoch-ns", "0"]) == 0
    lines = out.read_text().splitlines()
    spans = [s for line in lines for s in _check_otlp_json(json.loads(line))]
    roots = [s for s in spans if "parentSpanId" not in s]
    assert len(roots) == len(_unaborted(demo_events))
    assert all(r["name"] == SPAN_NAME and r["kind"] == 2 for r in roots)
    by_id = {r["spanId"]: r for r in roots}
    assert all(by_id[s["parentSpanId"]]["traceId"] == s["traceId"] for s in spans if s not in roots)
    first = min(roots, key=lambda r: int(r["startTimeUnixNano"]))
    attributes = {a["key"]: a["value"] for a in first["attributes"]}
    assert attributes["gen_ai.request.id"] == {"stringValue": "r0"}
    assert attributes["gen_ai.usage.prompt_tokens"] == {"intValue": "12"}
    assert set(attributes["gen_ai.latency.e2e"]) == {"doubleValue"}
    assert attributes["gen_ai.response.finish_reasons"] == {
        "arrayValue": {"values": [{"stringValue": "length"}]}
    }
    if not OTLP_PROTO:
        pytest.skip("opentelemetry-proto is not installed: the protobuf parse is not run")
    from google.protobuf import json_format
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    for line in lines:
        request = json.loads(line)
        # OTLP/JSON is protobuf's JSON mapping but for hex ids: make them base64, then parse.
        for resource_spans in request["resourceSpans"]:
            for scope_spans in resource_spans["scopeSpans"]:
                for span in scope_spans["spans"]:
                    for key in ("traceId", "spanId", "parentSpanId"):
                        if key in span:
                            span[key] = base64.b64encode(bytes.fromhex(span[key])).decode()
        message = json_format.ParseDict(request, ExportTraceServiceRequest())
        parsed = [s for r in message.resource_spans for ss in r.scope_spans for s in ss.spans]
        assert len(parsed) == len(_check_otlp_json(json.loads(line)))
        assert all(len(s.trace_id) == 16 and len(s.span_id) == 8 for s in parsed)


@pytest.mark.skipif(not OTLP_JSON_FILE, reason="opentelemetry-exporter-otlp-json-file missing")
def test_the_encoding_is_opentelemetrys_own(demo_events: list[Event]) -> None:
    from opentelemetry.exporter.otlp.json.common.trace_encoder import encode_spans as official

    _, spans = _spans(demo_events)
    assert encode_spans(spans) == official(spans).to_dict()


def test_the_json_exporter_writes_a_line_per_batch(demo_events: list[Event]) -> None:
    out = io.StringIO()
    exporter = OtlpJsonSpanExporter(out)
    provider = tracer_provider([exporter])
    export_spans(demo_events, provider.get_tracer("lifecycle_trace"))
    provider.shutdown()
    lines = out.getvalue().splitlines()
    assert len(lines) == exporter.num_batches >= 1
    assert sum(len(_check_otlp_json(json.loads(x))) for x in lines) == exporter.num_spans


# -- OTEL_SDK_DISABLED ------------------------------------------------------------------------


def test_sdk_disabled_exports_nothing(
    demo_events: list[Event],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    log = tmp_path / "demo.jsonl"
    write_jsonl(demo_events, log)
    monkeypatch.setenv("OTEL_SDK_DISABLED", "TRUE")
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "console")
    assert main(["export", str(log), "--format", "otel"]) == 0
    captured = capsys.readouterr()
    assert "no spans exported: OTEL_SDK_DISABLED=true" in captured.err
    assert "llm_request" not in captured.out
    out = tmp_path / "spans.jsonl"
    assert main(["export", str(log), "--format", "otel", "-o", str(out)]) == 0
    assert out.read_text() == ""
    assert configure_tracing() is None
