"""OpenTelemetry spans from an event log, named as vLLM names them (extra ``otel``).

One ``llm_request`` span (kind SERVER) per finished request, from arrival to
finish, with vLLM's attributes (``vllm/tracing``: ``gen_ai.request.id``,
``gen_ai.latency.*`` in seconds, token counts under both the old
``gen_ai.usage.prompt_tokens``/``completion_tokens`` and the newer GenAI
``input_tokens``/``output_tokens`` names), and one child span per phase
(``queued``, ``prefill``, ``decode``, ``preempted``; see
:mod:`~lifecycle_trace.export.phases`) so each state's duration is visible.
Requests still live when the log ended get no span, as in vLLM, which emits
the span when a request finishes. In a merged log of several engines each
span also names its engine (``minivllm.engine_id``).

Span times are the events' ``ts_ns`` plus ``epoch_ns``: the engine's default
clock is monotonic, so pass the wall-clock time of ``ts_ns == 0`` to place the
spans in real time.

:func:`span_exporter_from_env` picks the exporter from the standard
``OTEL_TRACES_EXPORTER`` and ``OTEL_EXPORTER_OTLP_*`` variables;
:func:`tracer_provider` builds a provider whose resource honours
``OTEL_SERVICE_NAME`` and ``OTEL_RESOURCE_ATTRIBUTES``.
"""

from __future__ import annotations

import importlib
import os
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import ConsoleSpanExporter, SimpleSpanProcessor, SpanExporter
from opentelemetry.trace import SpanKind, Tracer

from lifecycle_trace.fold.finished import finished_requests
from lifecycle_trace.fold.intervals import RequestIntervals
from lifecycle_trace.fold.phases import request_phases
from lifecycle_trace.fold.requests import Source, peek_records
from lifecycle_trace.fold.timeline import Timeline

__all__ = [
    "SPAN_NAME",
    "ExporterUnavailableError",
    "export_spans",
    "request_attributes",
    "span_exporter_from_env",
    "tracer_provider",
]

SPAN_NAME = "llm_request"
"""vLLM's name for the one span of a request."""

# Names as vLLM's SpanAttributes spell them, plus the GenAI conventions' newer token names.
REQUEST_ID = "gen_ai.request.id"
MAX_TOKENS = "gen_ai.request.max_tokens"
PROMPT_TOKENS = "gen_ai.usage.prompt_tokens"
COMPLETION_TOKENS = "gen_ai.usage.completion_tokens"
INPUT_TOKENS = "gen_ai.usage.input_tokens"
OUTPUT_TOKENS = "gen_ai.usage.output_tokens"
FINISH_REASONS = "gen_ai.response.finish_reasons"
TIME_IN_QUEUE = "gen_ai.latency.time_in_queue"
TIME_TO_FIRST_TOKEN = "gen_ai.latency.time_to_first_token"
E2E = "gen_ai.latency.e2e"
TIME_IN_PREFILL = "gen_ai.latency.time_in_model_prefill"
TIME_IN_DECODE = "gen_ai.latency.time_in_model_decode"
TIME_IN_INFERENCE = "gen_ai.latency.time_in_model_inference"

_OTLP_MODULES = {
    "http/protobuf": (
        "opentelemetry.exporter.otlp.proto.http.trace_exporter",
        "opentelemetry-exporter-otlp-proto-http",
    ),
    "grpc": (
        "opentelemetry.exporter.otlp.proto.grpc.trace_exporter",
        "opentelemetry-exporter-otlp-proto-grpc",
    ),
}


class ExporterUnavailableError(RuntimeError):
    """The span exporter the environment asks for cannot be built here."""


def _seconds(ns: int | float | None) -> float | None:
    return None if ns is None else ns / 1e9


ENGINE_ID = "minivllm.engine_id"


def request_attributes(t: Timeline, *, with_engine: bool = False) -> dict[str, Any]:
    """The ``llm_request`` span attributes of one request (latencies in seconds).

    ``with_engine`` adds the engine's id, which tells apart the spans of a merged log.
    """
    attributes: dict[str, Any] = {
        REQUEST_ID: t.request_id,
        MAX_TOKENS: t.max_tokens,
        PROMPT_TOKENS: t.num_prompt_tokens,
        COMPLETION_TOKENS: t.num_output_tokens,
        INPUT_TOKENS: t.num_prompt_tokens,
        OUTPUT_TOKENS: t.num_output_tokens,
        TIME_IN_QUEUE: _seconds(t.queue_time_ns),
        TIME_TO_FIRST_TOKEN: _seconds(t.ttft_ns),
        E2E: _seconds(t.e2e_time_ns),
        TIME_IN_PREFILL: _seconds(t.prefill_time_ns),
        TIME_IN_DECODE: _seconds(t.decode_time_ns),
        TIME_IN_INFERENCE: _seconds(t.inference_time_ns),
        "minivllm.num_preemptions": t.num_preemptions,
        "minivllm.num_cached_tokens": t.num_cached_tokens,
    }
    if t.finish_reason is not None:
        attributes[FINISH_REASONS] = (t.finish_reason,)
    if with_engine:
        attributes[ENGINE_ID] = t.engine_id
    # OpenTelemetry refuses None values; a request that never got a token has no TTFT.
    return {k: v for k, v in attributes.items() if v is not None}


def _emit(
    tracer: Tracer, t: Timeline, r: RequestIntervals, epoch_ns: int, with_engine: bool
) -> None:
    parent = tracer.start_span(
        SPAN_NAME,
        kind=SpanKind.SERVER,
        attributes=request_attributes(t, with_engine=with_engine),
        start_time=epoch_ns + r.arrival_ns,
    )
    context = trace.set_span_in_context(parent)
    for phase in request_phases(r):
        child = tracer.start_span(
            phase.name,
            context=context,
            attributes={
                REQUEST_ID: t.request_id,
                "minivllm.first_step": phase.first_step,
                "minivllm.last_step": phase.last_step,
            },
            start_time=epoch_ns + phase.start_ns,
        )
        child.end(end_time=epoch_ns + phase.end_ns)
    parent.end(end_time=epoch_ns + r.end_ns)


def export_spans(source: Source, tracer: Tracer, *, epoch_ns: int = 0) -> int:
    """Emit one ``llm_request`` span tree per finished request of a log; return how many.

    ``source`` is one engine's events, or the ``(engine_id, event)`` records
    of a merged log. Each request's spans are emitted at the end of the step
    it finished in and the request is then forgotten, so a log of any length
    is read in memory that follows its live requests.
    """
    merged, source = peek_records(source)
    count = 0
    for t, r in finished_requests(source):
        _emit(tracer, t, r, epoch_ns, merged)
        count += 1
    return count


def span_exporter_from_env() -> SpanExporter:
    """The exporter ``OTEL_TRACES_EXPORTER`` names (``otlp``, the default, or ``console``).

    For ``otlp`` the protocol comes from ``OTEL_EXPORTER_OTLP_TRACES_PROTOCOL``
    or ``OTEL_EXPORTER_OTLP_PROTOCOL`` (``http/protobuf`` by default, or
    ``grpc``); the exporter itself reads the endpoint, headers and timeout from
    the other ``OTEL_EXPORTER_OTLP_*`` variables. Raises
    :class:`ExporterUnavailableError` naming the package to install when the
    OTLP exporter is missing, and for an exporter name this library does not build.
    """
    name = os.environ.get("OTEL_TRACES_EXPORTER", "otlp").strip().lower() or "otlp"
    if name == "console":
        return ConsoleSpanExporter()
    if name != "otlp":
        raise ExporterUnavailableError(
            f"OTEL_TRACES_EXPORTER={name!r} is not supported here; use 'otlp' or 'console'"
        )
    protocol = (
        os.environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
        or os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL")
        or "http/protobuf"
    ).strip()
    if protocol not in _OTLP_MODULES:
        raise ExporterUnavailableError(
            f"OTLP protocol {protocol!r} is not supported; use one of {sorted(_OTLP_MODULES)}"
        )
    module_name, package = _OTLP_MODULES[protocol]
    try:
        module = importlib.import_module(module_name)
    except ImportError:
        raise ExporterUnavailableError(
            f"OTLP over {protocol} needs the package {package!r}; install it, or set "
            f"OTEL_TRACES_EXPORTER=console"
        ) from None
    exporter: SpanExporter = module.OTLPSpanExporter()
    return exporter


def tracer_provider(exporter: SpanExporter) -> TracerProvider:
    """A provider that hands every ended span straight to ``exporter``.

    The resource comes from ``OTEL_SERVICE_NAME`` and ``OTEL_RESOURCE_ATTRIBUTES``;
    without a service name it is ``minivllm``. Call ``shutdown()`` when done.
    """
    resource = Resource.create()
    if str(resource.attributes.get("service.name", "")).startswith("unknown_service"):
        resource = resource.merge(Resource({"service.name": "minivllm"}))
    provider = TracerProvider(resource=resource)
    # Spans are built from a stored log as fast as it is read, so batching would only add a thread.
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider
