"""OpenTelemetry spans of requests, as vLLM emits them (extra ``otel``).

One ``llm_request`` span (kind SERVER) per request that finished, from arrival
to finish, with the attributes vLLM's output processor sets (``do_tracing``:
``gen_ai.request.id``, the ``gen_ai.latency.*`` intervals in seconds,
``gen_ai.usage.prompt_tokens`` / ``completion_tokens``, and, when truthy as
vLLM checks them, ``gen_ai.request.max_tokens``, ``temperature``, ``top_p``
and ``n``), plus the newer GenAI token names (``gen_ai.usage.input_tokens``
/ ``output_tokens``), ``gen_ai.response.finish_reasons``, and one child span
per phase (``queued``, ``prefill``, ``decode``, ``preempted``; see
:mod:`~lifecycle_trace.export.phases`). A request aborted by the client gets
no span, as in vLLM, whose output processor forgets it before tracing; nor
does one still live when the log ends. In a merged log each span also names
its engine (``minivllm.engine_id``).

Two ways to get them:

- live: :class:`SpanObserver` is a bus handler that emits a request's spans
  at the end of the step it finished in (``MINIVLLM_OBSERVERS=otel`` or
  ``minivllm generate --observer otel`` attach it, with the tracer provider
  :func:`configure_tracing` sets up);
- from a stored log: :func:`export_spans` (``lifecycle-trace export --format otel``).

Exporters are chosen as the OpenTelemetry SDK chooses them:
:func:`span_exporters_from_env` reads ``OTEL_TRACES_EXPORTER`` (a comma
list; ``none``; ``otlp`` by default, its protocol from
``OTEL_EXPORTER_OTLP_TRACES_PROTOCOL`` / ``OTEL_EXPORTER_OTLP_PROTOCOL``)
and loads each exporter from the SDK's ``opentelemetry_traces_exporter``
entry points, so ``console``, ``otlp`` and any installed third-party
exporter work; :func:`tracer_provider` puts each behind a
``BatchSpanProcessor`` and names the service from ``OTEL_SERVICE_NAME`` /
``OTEL_RESOURCE_ATTRIBUTES`` (``minivllm`` if unnamed).
``OTEL_SDK_DISABLED=true`` turns it all off (:func:`sdk_disabled`).

Span times are the events' ``ts_ns`` plus ``epoch_ns``: the engine's default
clock is monotonic, so pass the wall-clock time of ``ts_ns == 0`` to place the
spans in real time (the live observer works it out for the default clock).
"""

from __future__ import annotations

import atexit
import os
import time
from collections.abc import Sequence
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.export import SpanExporter
from opentelemetry.sdk.trace.export import SpanExportResult
from opentelemetry.trace import SpanKind
from opentelemetry.trace import Tracer

from lifecycle_trace.fold.finished import finished_requests
from lifecycle_trace.fold.intervals import RequestIntervals
from lifecycle_trace.fold.intervals import intervals_of
from lifecycle_trace.fold.phases import request_phases
from lifecycle_trace.fold.requests import RequestFold
from lifecycle_trace.fold.requests import RequestState
from lifecycle_trace.fold.requests import Source
from lifecycle_trace.fold.requests import peek_records
from lifecycle_trace.fold.timeline import Timeline
from lifecycle_trace.fold.timeline import timeline_of
from minivllm.events import Event
from minivllm.request import RequestStatus

__all__ = [
    "SPAN_NAME",
    "ExporterUnavailableError",
    "FailureCountingExporter",
    "SpanObserver",
    "configure_tracing",
    "export_spans",
    "make_span_observer",
    "request_attributes",
    "sdk_disabled",
    "span_exporters_from_env",
    "tracer_provider",
]

SPAN_NAME = "llm_request"
"""vLLM's name for the one span of a request."""

INSTRUMENTATION_NAME = "lifecycle_trace"
"""The instrumentation scope of the spans."""

# Names as vLLM's SpanAttributes spell them (vllm/tracing/utils.py).
REQUEST_ID = "gen_ai.request.id"
MAX_TOKENS = "gen_ai.request.max_tokens"
TEMPERATURE = "gen_ai.request.temperature"
TOP_P = "gen_ai.request.top_p"
N = "gen_ai.request.n"
PROMPT_TOKENS = "gen_ai.usage.prompt_tokens"
COMPLETION_TOKENS = "gen_ai.usage.completion_tokens"
TIME_IN_QUEUE = "gen_ai.latency.time_in_queue"
TIME_TO_FIRST_TOKEN = "gen_ai.latency.time_to_first_token"
E2E = "gen_ai.latency.e2e"
TIME_IN_PREFILL = "gen_ai.latency.time_in_model_prefill"
TIME_IN_DECODE = "gen_ai.latency.time_in_model_decode"
TIME_IN_INFERENCE = "gen_ai.latency.time_in_model_inference"
# The GenAI semantic conventions' names, beside vLLM's.
INPUT_TOKENS = "gen_ai.usage.input_tokens"
OUTPUT_TOKENS = "gen_ai.usage.output_tokens"
FINISH_REASONS = "gen_ai.response.finish_reasons"
ENGINE_ID = "minivllm.engine_id"

_SDK_DISABLED = "OTEL_SDK_DISABLED"
_TRACES_EXPORTER = "OTEL_TRACES_EXPORTER"
# The package that registers each of the SDK's OTLP exporter names.
_OTLP_PACKAGES = {
    "otlp_proto_grpc": "opentelemetry-exporter-otlp-proto-grpc",
    "otlp_proto_http": "opentelemetry-exporter-otlp-proto-http",
}


class ExporterUnavailableError(RuntimeError):
    """The span exporter the environment asks for cannot be built here."""


def sdk_disabled() -> bool:
    """Whether ``OTEL_SDK_DISABLED`` is ``true`` (any case), as the SDK reads it."""
    return os.environ.get(_SDK_DISABLED, "").strip().lower() == "true"


def _seconds(ns: int | float | None) -> float | None:
    return None if ns is None else ns / 1e9


def request_attributes(t: Timeline, *, with_engine: bool = False) -> dict[str, Any]:
    """The ``llm_request`` span attributes of one request (latencies in seconds).

    ``with_engine`` adds the engine's id, which tells apart the spans of a merged log.
    """
    attributes: dict[str, Any] = {
        TIME_TO_FIRST_TOKEN: _seconds(t.ttft_ns),
        E2E: _seconds(t.e2e_time_ns),
        TIME_IN_QUEUE: _seconds(t.queue_time_ns),
        PROMPT_TOKENS: t.num_prompt_tokens,
        COMPLETION_TOKENS: t.num_output_tokens,
        TIME_IN_PREFILL: _seconds(t.prefill_time_ns),
        TIME_IN_DECODE: _seconds(t.decode_time_ns),
        TIME_IN_INFERENCE: _seconds(t.inference_time_ns),
        REQUEST_ID: t.request_id,
    }
    # vLLM sets these only when truthy (so temperature 0 is left out).
    if t.top_p:
        attributes[TOP_P] = t.top_p
    if t.max_tokens:
        attributes[MAX_TOKENS] = t.max_tokens
    if t.temperature:
        attributes[TEMPERATURE] = t.temperature
    if t.n:
        attributes[N] = t.n
    attributes[INPUT_TOKENS] = t.num_prompt_tokens
    attributes[OUTPUT_TOKENS] = t.num_output_tokens
    if t.finish_reason is not None:
        attributes[FINISH_REASONS] = (t.finish_reason,)
    attributes["minivllm.num_preemptions"] = t.num_preemptions
    attributes["minivllm.num_cached_tokens"] = t.num_cached_tokens
    if with_engine:
        attributes[ENGINE_ID] = t.engine_id
    # OpenTelemetry refuses None values; a request that never got a token has no TTFT.
    return {k: v for k, v in attributes.items() if v is not None}


def _emit(
    tracer: Tracer, t: Timeline, r: RequestIntervals, epoch_ns: int, with_engine: bool
) -> bool:
    """Emit the span tree of a finished request; False for an abort, which gets none."""
    if t.finish_status is RequestStatus.FINISHED_ABORTED:
        return False
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
    return True


def export_spans(source: Source, tracer: Tracer, *, epoch_ns: int = 0) -> int:
    """Emit one ``llm_request`` span tree per request of a log that finished unaborted.

    Returns how many. ``source`` is one engine's events, or the
    ``(engine_id, event)`` records of a merged log. Each request's spans are
    emitted at the end of the step it finished in and the request is then
    forgotten, so a log of any length is read in memory that follows its
    live requests.
    """
    merged, source = peek_records(source)
    return sum(_emit(tracer, t, r, epoch_ns, merged) for t, r in finished_requests(source))


class SpanObserver:
    """A bus handler emitting each request's spans at the end of the step it finished in.

    ``tracer`` defaults to the global tracer provider's (set one with
    :func:`configure_tracing`, or run under ``opentelemetry-instrument``).
    ``epoch_ns`` is the wall-clock time of the engine clock's zero; by
    default it is worked out for the engine's default clock
    (``time.monotonic_ns``). Requests aborted by the client get no span.
    """

    __slots__ = ("_fold", "_tracer", "epoch_ns", "num_spans")

    def __init__(self, tracer: Tracer | None = None, *, epoch_ns: int | None = None) -> None:
        self._tracer = tracer if tracer is not None else trace.get_tracer(INSTRUMENTATION_NAME)
        self.epoch_ns = time.time_ns() - time.monotonic_ns() if epoch_ns is None else epoch_ns
        self.num_spans = 0
        self._fold = RequestFold(on_retire=self._retired, keep_finished=False, history=False)

    def __call__(self, event: Event) -> None:
        """Fold one event in; a step's end emits the spans of the requests it finished."""
        self._fold.feed(event)

    def _retired(self, t: RequestState) -> None:
        if _emit(self._tracer, timeline_of(t, t.step), intervals_of(t), self.epoch_ns, False):
            self.num_spans += 1


def span_exporters_from_env() -> list[SpanExporter]:
    """The exporters ``OTEL_TRACES_EXPORTER`` names, built from the SDK's entry points.

    The names are the SDK's: a comma list, ``none`` for none, ``otlp`` (the
    default) for the OTLP exporter of ``OTEL_EXPORTER_OTLP_TRACES_PROTOCOL``
    or ``OTEL_EXPORTER_OTLP_PROTOCOL`` (``grpc`` unless set), ``console``, or
    the name any installed package registers under the
    ``opentelemetry_traces_exporter`` entry points. Each exporter reads its
    own settings (``OTEL_EXPORTER_OTLP_*``) from the environment. Raises
    :class:`ExporterUnavailableError` naming the package to install when an
    exporter is not installed, or the protocol is unknown.
    """
    from opentelemetry.sdk._configuration import _get_exporter_entry_point
    from opentelemetry.sdk._configuration import _get_exporter_names
    from opentelemetry.sdk._configuration import _import_exporters

    try:
        if os.environ.get(_TRACES_EXPORTER, "").strip():
            names = list(_get_exporter_names("traces"))
        else:  # the specification's default
            names = [_get_exporter_entry_point("otlp", "traces")]
    except RuntimeError as exc:  # an unknown OTLP protocol
        raise ExporterUnavailableError(str(exc)) from None
    exporters: list[SpanExporter] = []
    for name in names:
        try:
            classes = _import_exporters([name], [], [])[0]
        except RuntimeError:
            package = _OTLP_PACKAGES.get(name)
            hint = (
                f"install {package!r}"
                if package
                else "no installed package registers it under the entry points "
                "'opentelemetry_traces_exporter'"
            )
            raise ExporterUnavailableError(
                f"the trace exporter {name!r} (from {_TRACES_EXPORTER}) is not available: {hint}"
            ) from None
        exporters.extend(cls() for cls in classes.values())
    return exporters


class FailureCountingExporter(SpanExporter):
    """A span exporter that counts the batches the exporter it wraps failed to export.

    The SDK exports in a background thread and only logs a failure; a command
    that must say whether its export worked reads :attr:`failures` afterwards.
    """

    def __init__(self, inner: SpanExporter) -> None:
        self.inner = inner
        self.failures = 0

    def export(self, spans: Sequence[Any]) -> SpanExportResult:
        """Export through the wrapped exporter; a failure or an exception counts one."""
        try:
            result = self.inner.export(spans)
        except Exception:
            self.failures += 1
            return SpanExportResult.FAILURE
        if result is not SpanExportResult.SUCCESS:
            self.failures += 1
        return result

    def shutdown(self) -> None:
        """Shut the wrapped exporter down."""
        self.inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Flush the wrapped exporter."""
        return bool(self.inner.force_flush(timeout_millis))


def tracer_provider(
    exporters: SpanExporter | Sequence[SpanExporter] | None = None,
) -> TracerProvider:
    """A provider with each exporter behind a ``BatchSpanProcessor``; call ``shutdown()`` when done.

    ``exporters`` default to :func:`span_exporters_from_env`. The resource comes
    from ``OTEL_SERVICE_NAME`` and ``OTEL_RESOURCE_ATTRIBUTES``; without a
    service name it is ``minivllm``.
    """
    if exporters is None:
        exporters = span_exporters_from_env()
    elif isinstance(exporters, SpanExporter):
        exporters = [exporters]
    resource = Resource.create()
    if str(resource.attributes.get("service.name", "")).startswith("unknown_service"):
        resource = resource.merge(Resource({"service.name": "minivllm"}))
    provider = TracerProvider(resource=resource)
    for exporter in exporters:
        provider.add_span_processor(BatchSpanProcessor(exporter))
    return provider


def configure_tracing() -> TracerProvider | None:
    """Set the global tracer provider from the environment, unless one is set; return it.

    As vLLM's ``init_tracer``: exporters from :func:`span_exporters_from_env`,
    batched, shut down (so flushed) at exit. Returns None when
    ``OTEL_SDK_DISABLED=true`` or when the application already set a
    provider, which is then left as it is.
    """
    if sdk_disabled():
        return None
    if isinstance(trace.get_tracer_provider(), TracerProvider):
        return None
    provider = tracer_provider()
    trace.set_tracer_provider(provider)
    atexit.register(provider.shutdown)
    return provider


def make_span_observer() -> SpanObserver:
    """The ``otel`` observer entry point: a :class:`SpanObserver` on the global provider.

    Sets the global provider from the environment first if the application
    set none (:func:`configure_tracing`).
    """
    configure_tracing()
    return SpanObserver()
