"""The ``export`` and ``plot`` subcommands of ``lifecycle-trace``.

``export LOG --format chrome|otel|prometheus [-o OUT]`` and
``plot LOG -o timeline.svg|timeline.html``. :func:`add_commands` adds them to
the command's subparsers; :data:`COMMANDS` maps their names to handlers,
which return the exit status and raise ``ValueError`` for a user error.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from lifecycle_trace.eventlog import EventLog
from lifecycle_trace.export.chrome import chrome_trace
from lifecycle_trace.export.chrome_check import validate_chrome_trace
from lifecycle_trace.export.plot import write_plot
from lifecycle_trace.store import read_jsonl
from minivllm.events import Event

__all__ = ["COMMANDS", "FORMATS", "add_commands"]

FORMATS = ("chrome", "otel", "prometheus")
"""The formats ``export`` writes."""


def add_commands(sub: Any) -> None:
    """Add ``export`` and ``plot`` to ``sub`` (the object ``add_subparsers()`` returned)."""
    export = sub.add_parser(
        "export",
        help="export a log as a Chrome/Perfetto trace, OpenTelemetry spans or Prometheus metrics",
        description=(
            "chrome: Trace Event JSON for ui.perfetto.dev or chrome://tracing. "
            "otel: one llm_request span per finished request; written as JSON lines with -o, "
            "else sent to the exporter named by OTEL_TRACES_EXPORTER (default otlp, configured "
            "by OTEL_EXPORTER_OTLP_*). prometheus: vLLM's metrics in the text exposition format."
        ),
    )
    export.add_argument("log", type=Path, help="a JSON Lines event log")
    export.add_argument("--format", choices=FORMATS, required=True, help="what to write")
    export.add_argument("-o", "--output", type=Path, help="file to write (default: stdout)")
    export.add_argument(
        "--epoch-ns",
        type=int,
        help="otel: wall-clock ns of event time 0 (default: the log's last event at the "
        "log file's modification time)",
    )
    export.add_argument("--model-name", default="minivllm", help="prometheus: model_name label")
    export.add_argument(
        "--lenient", action="store_true", help="skip corrupt lines (with a warning)"
    )

    plot = sub.add_parser(
        "plot", help="draw the log as a self-contained SVG or HTML timeline picture"
    )
    plot.add_argument("log", type=Path, help="a JSON Lines event log")
    plot.add_argument("-o", "--output", type=Path, required=True, help="a .svg or .html file")
    plot.add_argument("--title", help="the picture's title")
    plot.add_argument("--lenient", action="store_true", help="skip corrupt lines (with a warning)")


def _load(path: Path, lenient: bool) -> list[Event]:
    if not path.is_file():
        raise ValueError(f"no such log file: {path}")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        loaded = read_jsonl(path, lenient=lenient)
    for w in caught:
        print(f"lifecycle-trace: warning: {w.message}", file=sys.stderr)
    log = EventLog()
    for event in loaded.events:
        try:
            log.append(event)
        except ValueError as exc:
            # Dropped lines leave a gap; what follows it cannot be folded correctly.
            print(f"lifecycle-trace: warning: {exc}; reading stops there", file=sys.stderr)
            break
    if not len(log):
        raise ValueError(f"{path}: the log holds no events")
    return list(log)


def _write(text: str, output: Path | None) -> None:
    if output is None:
        sys.stdout.write(text)
    else:
        output.write_text(text, encoding="utf-8")


def _chrome(events: list[Event], args: argparse.Namespace) -> str:
    trace = chrome_trace(events)
    validate_chrome_trace(trace)
    return json.dumps(trace, separators=(",", ":")) + "\n"


def _otel(events: list[Event], args: argparse.Namespace) -> str | None:
    try:
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        from lifecycle_trace.export import otel
    except ImportError:
        raise ValueError(
            "--format otel needs the 'otel' extra: pip install 'minivllm-lifecycle-trace[otel]'"
        ) from None
    epoch = args.epoch_ns
    if epoch is None:
        epoch = os.stat(args.log).st_mtime_ns - events[-1].ts_ns
    out = io.StringIO()
    try:
        exporter = (
            ConsoleSpanExporter(out=out, formatter=lambda s: s.to_json(indent=None) + "\n")
            if args.output is not None
            else otel.span_exporter_from_env()
        )
    except otel.ExporterUnavailableError as exc:
        raise ValueError(str(exc)) from None
    provider = otel.tracer_provider(exporter)
    count = otel.export_spans(events, provider.get_tracer("lifecycle_trace"), epoch_ns=epoch)
    provider.shutdown()
    if args.output is None:
        print(f"{count} llm_request span(s) handed to {type(exporter).__name__}", file=sys.stderr)
        return None
    return out.getvalue()


def _prometheus(events: list[Event], args: argparse.Namespace) -> str:
    try:
        from prometheus_client import CollectorRegistry, generate_latest

        from lifecycle_trace.export.prometheus import project_metrics
    except ImportError:
        raise ValueError(
            "--format prometheus needs the 'prometheus' extra: "
            "pip install 'minivllm-lifecycle-trace[prometheus]'"
        ) from None
    registry = CollectorRegistry()
    project_metrics(events, registry, model_name=args.model_name)
    text: str = generate_latest(registry).decode()
    return text


_WRITERS: Mapping[str, Callable[[list[Event], argparse.Namespace], str | None]] = {
    "chrome": _chrome,
    "otel": _otel,
    "prometheus": _prometheus,
}


def cmd_export(args: argparse.Namespace) -> int:
    """``lifecycle-trace export``: write the log in another tool's format."""
    events = _load(args.log, args.lenient)
    text = _WRITERS[args.format](events, args)
    if text is not None:
        _write(text, args.output)
    if args.output is not None:
        print(f"{args.format} export of {len(events)} events written to {args.output}")
    return 0


def cmd_plot(args: argparse.Namespace) -> int:
    """``lifecycle-trace plot``: draw the log as an SVG or HTML timeline."""
    events = _load(args.log, args.lenient)
    kind = write_plot(events, args.output, title=args.title)
    print(f"{kind.upper()} timeline of {args.log} written to {args.output}")
    return 0


COMMANDS: Mapping[str, Callable[[argparse.Namespace], int]] = {
    "export": cmd_export,
    "plot": cmd_plot,
}
"""Handlers of the subcommands :func:`add_commands` adds, by name."""
