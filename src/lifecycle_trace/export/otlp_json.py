"""Spans as OTLP/JSON, the form the OpenTelemetry Collector's file receiver reads (extra ``otel``).

:class:`OtlpJsonSpanExporter` is a ``SpanExporter`` that writes each batch of
spans as one line: an ``ExportTraceServiceRequest`` in OTLP's JSON encoding
(``resourceSpans`` → ``scopeSpans`` → ``spans``), which is the protobuf JSON
mapping with OTLP's two changes: trace and span ids are lowercase hex, not
base64, and enums are numbers. 64-bit integers (times in nanoseconds,
``intValue`` attributes) are decimal strings. A file of such lines is what
the Collector's ``otlpjsonfile`` receiver and OpenTelemetry's own JSON file
exporter read and write.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from collections.abc import Sequence
from typing import IO
from typing import Any

import orjson
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter
from opentelemetry.sdk.trace.export import SpanExportResult
from opentelemetry.trace import SpanKind
from opentelemetry.trace import StatusCode

__all__ = ["OtlpJsonSpanExporter", "encode_spans"]

# OTLP's SpanFlags: the parent's is-remote bit is known (bit 8), and set (bit 9).
_HAS_IS_REMOTE = 0x100
_IS_REMOTE = 0x200
# OTLP's Span.SpanKind numbers UNSPECIFIED as 0, so the API's kinds are one higher.
_KIND = {kind: kind.value + 1 for kind in SpanKind}
_STATUS = {StatusCode.UNSET: 0, StatusCode.OK: 1, StatusCode.ERROR: 2}


def _value(value: Any) -> dict[str, Any]:
    """An ``AnyValue``: the attribute value under its type's key."""
    if isinstance(value, bool):
        return {"boolValue": value}
    if isinstance(value, int):
        return {"intValue": str(value)}
    if isinstance(value, float):
        return {"doubleValue": value}
    if isinstance(value, str):
        return {"stringValue": value}
    if isinstance(value, bytes):
        raise TypeError("bytes attribute values are not written")
    return {"arrayValue": {"values": [_value(v) for v in value]}}


def _attributes(attributes: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    return [{"key": k, "value": _value(v)} for k, v in (attributes or {}).items()]


def _span(span: ReadableSpan) -> dict[str, Any]:
    context = span.get_span_context()
    assert context is not None  # every SDK span has one
    out: dict[str, Any] = {
        "traceId": f"{context.trace_id:032x}",
        "spanId": f"{context.span_id:016x}",
    }
    if context.trace_state:
        out["traceState"] = context.trace_state.to_header()
    parent = span.parent
    if parent is not None:
        out["parentSpanId"] = f"{parent.span_id:016x}"
    out["flags"] = _HAS_IS_REMOTE | (_IS_REMOTE if parent is not None and parent.is_remote else 0)
    out["name"] = span.name
    out["kind"] = _KIND[span.kind]
    out["startTimeUnixNano"] = str(span.start_time)
    out["endTimeUnixNano"] = str(span.end_time)
    if span.attributes:
        out["attributes"] = _attributes(span.attributes)
    if span.dropped_attributes:
        out["droppedAttributesCount"] = span.dropped_attributes
    if span.events:
        out["events"] = [
            {
                "timeUnixNano": str(e.timestamp),
                "name": e.name,
                **({"attributes": _attributes(e.attributes)} if e.attributes else {}),
            }
            for e in span.events
        ]
    status: dict[str, Any] = {}
    if span.status.status_code is not StatusCode.UNSET:
        status["code"] = _STATUS[span.status.status_code]
    if span.status.description:
        status["message"] = span.status.description
    out["status"] = status
    return out


def encode_spans(spans: Sequence[ReadableSpan]) -> dict[str, Any]:
    """An ``ExportTraceServiceRequest`` in OTLP/JSON: spans grouped by resource, then by scope."""
    by_resource: dict[int, tuple[Any, dict[Any, list[dict[str, Any]]]]] = {}
    for span in spans:
        resource = span.resource
        _, scopes = by_resource.setdefault(id(resource), (resource, {}))
        scopes.setdefault(span.instrumentation_scope, []).append(_span(span))
    resource_spans = []
    for resource, scopes in by_resource.values():
        scope_spans = []
        for scope, encoded in scopes.items():
            entry: dict[str, Any] = {}
            if scope is not None:
                entry["scope"] = {"name": scope.name}
                if scope.version:
                    entry["scope"]["version"] = scope.version
                if scope.schema_url:
                    entry["schemaUrl"] = scope.schema_url
            entry["spans"] = encoded
            scope_spans.append(entry)
        item: dict[str, Any] = {"resource": {"attributes": _attributes(resource.attributes)}}
        item["scopeSpans"] = scope_spans
        if resource.schema_url:
            item["schemaUrl"] = resource.schema_url
        resource_spans.append(item)
    return {"resourceSpans": resource_spans}


class OtlpJsonSpanExporter(SpanExporter):
    """Writes each exported batch to ``out`` as one OTLP/JSON line (see the module docstring).

    Safe to call from the batch processor's thread; ``shutdown`` flushes and
    leaves closing ``out`` to its owner.
    """

    def __init__(self, out: IO[str]) -> None:
        self._out = out
        self._lock = threading.Lock()
        self.num_spans = 0
        self.num_batches = 0

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        """Write one line for this batch."""
        if not spans:
            return SpanExportResult.SUCCESS
        line = orjson.dumps(encode_spans(spans)).decode() + "\n"
        with self._lock:
            self._out.write(line)
            self.num_spans += len(spans)
            self.num_batches += 1
        return SpanExportResult.SUCCESS

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Flush the stream."""
        with self._lock:
            self._out.flush()
        return True

    def shutdown(self) -> None:
        """Flush the stream (its owner closes it)."""
        self.force_flush()
