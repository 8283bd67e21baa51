"""The ``export`` and ``plot`` subcommands of ``lifecycle-trace``.

``export LOG --format chrome|otel|prometheus|parquet [-o OUT]`` and
``plot LOG -o timeline.svg|timeline.html``. :func:`add_commands` adds them to
the command's subparsers; :data:`COMMANDS` maps their names to handlers,
which return the exit status and raise ``ValueError`` for a user error.

``export`` reads the log in one streaming pass and writes as it reads, in
memory that follows the log's live requests, not its size. ``plot`` draws
the first requests added (``--limit``), since a picture of a whole long run
would show nothing. Both read a merged log as ``show``, ``check`` and
``stats`` do, every engine on its own: the Chrome trace gets a process per
engine, each span names its engine, the metrics carry each engine's id as
their ``engine`` label and the picture's rows are named ``ENGINE/ID``.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
from collections.abc import Callable
from collections.abc import Iterator
from collections.abc import Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from typing import TextIO

import orjson

from lifecycle_trace._output import check_output
from lifecycle_trace._output import open_replacing
from lifecycle_trace.cli._open import OpenLog
from lifecycle_trace.cli._open import open_log
from lifecycle_trace.export.chrome import write_chrome_trace
from lifecycle_trace.export.plot import picture_of
from lifecycle_trace.export.plot import plot_format
from lifecycle_trace.export.plot import write_plot
from minivllm.cli_errors import InputOutputError
from minivllm.cli_errors import UsageError
from minivllm.validation import INT64_MAX

__all__ = ["COMMANDS", "DEFAULT_PLOT_LIMIT", "FORMATS", "add_commands", "last_ts_ns"]

FORMATS = ("chrome", "otel", "prometheus", "parquet")
"""The formats ``export`` writes."""

DEFAULT_PLOT_LIMIT = 200
"""Requests ``plot`` draws unless told otherwise: more would not be legible."""

_TAIL_BLOCK = 1 << 16


def add_commands(sub: Any) -> None:
    """Add ``export`` and ``plot`` to ``sub`` (the object ``add_subparsers()`` returned)."""
    export = sub.add_parser(
        "export",
        help="export a log as a Perfetto trace, OpenTelemetry spans, Prometheus metrics or "
        "Parquet tables",
        description=(
            "chrome: Trace Event JSON, for ui.perfetto.dev. "
            "otel: one llm_request span tree per request that finished unaborted, as vLLM traces "
            "them; with -o, written as OTLP/JSON lines (one ExportTraceServiceRequest per "
            "batch, what the OpenTelemetry Collector's otlpjsonfile receiver reads), else "
            "handed to the exporters OTEL_TRACES_EXPORTER names (the SDK's names: otlp by "
            "default, console, none, a comma list or any installed exporter; OTLP settings from "
            "OTEL_EXPORTER_OTLP_*); OTEL_SDK_DISABLED=true exports nothing. "
            "prometheus: vLLM's metrics in the text exposition format. "
            "parquet: events.parquet (every event) and requests.parquet (one row per request) "
            "in the directory -o names."
        ),
    )
    export.add_argument("log", type=Path, help="a JSON Lines event log")
    export.add_argument("--format", choices=FORMATS, required=True, help="what to write")
    export.add_argument(
        "-o",
        "--output",
        type=Path,
        help="file to write (default: stdout); for parquet, the directory to write",
    )
    export.add_argument(
        "--epoch-ns",
        type=int,
        help="otel: wall-clock ns of event time 0 (default: the log's last event at the "
        "log file's modification time)",
    )
    export.add_argument("--model-name", default="minivllm", help="prometheus: model_name label")
    export.add_argument(
        "--row-group-size",
        type=int,
        default=65536,
        help="parquet: rows per row group; memory holds one group of each table (default 65536)",
    )
    export.add_argument(
        "--lenient", action="store_true", help="skip corrupt lines (with a warning)"
    )

    plot = sub.add_parser(
        "plot", help="draw the log as a self-contained SVG or HTML timeline picture"
    )
    plot.add_argument("log", type=Path, help="a JSON Lines event log")
    plot.add_argument("-o", "--output", type=Path, required=True, help="a .svg or .html file")
    plot.add_argument("--title", help="the picture's title")
    plot.add_argument(
        "--limit",
        type=int,
        default=DEFAULT_PLOT_LIMIT,
        help=f"draw at most this many requests, the first added (default {DEFAULT_PLOT_LIMIT}; "
        f"0 for all)",
    )
    plot.add_argument("--lenient", action="store_true", help="skip corrupt lines (with a warning)")


@contextmanager
def _output(path: Path | None, log: Path) -> Iterator[TextIO]:
    """Standard output, or ``path``: replaced only once the export is complete, never the log."""
    if path is None:
        yield sys.stdout
        return
    with open_replacing(path, inputs=[log]) as f:
        yield f


def last_ts_ns(path: Path) -> int:
    """The ``ts_ns`` of the log's last readable line, found by reading the file from its end."""
    with open(path, "rb") as f:
        position = f.seek(0, os.SEEK_END)
        partial = b""
        while position > 0:
            size = min(_TAIL_BLOCK, position)
            position -= size
            f.seek(position)
            lines = (f.read(size) + partial).split(b"\n")
            # Before the file's start, the first piece may be the end of an earlier line.
            partial = lines.pop(0) if position > 0 else b""
            for line in reversed(lines):
                try:
                    data = orjson.loads(line)
                except orjson.JSONDecodeError:
                    continue
                if isinstance(data, dict) and type(data.get("ts_ns")) is int:
                    ts: int = data["ts_ns"]
                    return ts
    raise InputOutputError(f"{path}: the log holds no events")


@contextmanager
def _needs_extra(extra: str) -> Iterator[None]:
    """The imports inside need the pip extra named like the format: a usage error without it."""
    try:
        yield
    except ImportError:
        raise UsageError(
            f"--format {extra} needs the {extra!r} extra: "
            f"pip install 'minivllm-lifecycle-trace[{extra}]'"
        ) from None


def _chrome(log: OpenLog, args: argparse.Namespace) -> None:
    with _output(args.output, args.log) as out:
        write_chrome_trace(log.source(), out)


def _otel(log: OpenLog, args: argparse.Namespace) -> None:
    with _needs_extra("otel"):
        from opentelemetry.sdk.trace.export import SpanExporter

        from lifecycle_trace.export import otel
        from lifecycle_trace.export.otlp_json import OtlpJsonSpanExporter
    epoch = args.epoch_ns
    if epoch is None:
        epoch = os.stat(args.log).st_mtime_ns - last_ts_ns(args.log)
        if epoch < 0:
            raise InputOutputError(
                f"{args.log}: its event times run past its file's modification time, so they "
                f"cannot be placed on the wall clock: give --epoch-ns"
            )
    with contextlib.ExitStack() as stack:
        exporters: list[SpanExporter] = []
        if args.output is not None:
            out = stack.enter_context(_output(args.output, args.log))
            if not otel.sdk_disabled():
                exporters = [OtlpJsonSpanExporter(out)]
        elif not otel.sdk_disabled():
            try:
                exporters = otel.span_exporters_from_env()
            except otel.ExporterUnavailableError as exc:
                raise UsageError(str(exc)) from None
        if not exporters:
            why = "OTEL_SDK_DISABLED=true" if otel.sdk_disabled() else "OTEL_TRACES_EXPORTER=none"
            print(f"no spans exported: {why}", file=sys.stderr)
            return
        # Each exporter's failures are counted here and reported in one line; the
        # SDK's own retry warnings are kept quiet for the command's duration.
        watched = [otel.FailureCountingExporter(e) for e in exporters]
        provider = otel.tracer_provider(watched)
        with _quiet("opentelemetry"):
            try:
                tracer = provider.get_tracer(otel.INSTRUMENTATION_NAME)
                count = otel.export_spans(log.source(), tracer, epoch_ns=epoch)
            finally:
                provider.shutdown()  # flushes the batch processors
        failed = [w for w in watched if w.failures]
        if failed:
            names = ", ".join(type(w.inner).__name__ for w in failed)
            raise InputOutputError(
                f"{sum(w.failures for w in failed)} batch(es) of spans could not be exported by "
                f"{names} (is the collector reachable? see OTEL_EXPORTER_OTLP_*)"
            )
    if args.output is None:
        names = ", ".join(type(e).__name__ for e in exporters)
        print(f"{count} llm_request span(s) handed to {names}", file=sys.stderr)


@contextmanager
def _quiet(logger_name: str) -> Iterator[None]:
    """A library's log records below CRITICAL dropped inside the block (it reports otherwise)."""
    logger = logging.getLogger(logger_name)
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(level)


def _prometheus(log: OpenLog, args: argparse.Namespace) -> None:
    with _needs_extra("prometheus"):
        from prometheus_client import CollectorRegistry
        from prometheus_client import generate_latest

        from lifecycle_trace.export.prometheus import project_metrics
    registry = CollectorRegistry()
    project_metrics(log.source(), registry, model_name=args.model_name)
    with _output(args.output, args.log) as out:
        out.write(generate_latest(registry).decode())


def _parquet(log: OpenLog, args: argparse.Namespace) -> None:
    with _needs_extra("parquet"):
        from lifecycle_trace.export.parquet import write_parquet
    if args.output is None:
        raise UsageError("--format parquet writes a directory of two tables: name it with -o DIR")
    if args.output.exists() and not args.output.is_dir():
        raise UsageError(f"-o {args.output}: --format parquet writes a directory, not a file")
    write_parquet(log.source(), args.output, batch_size=args.row_group_size)


_WRITERS: Mapping[str, Callable[[OpenLog, argparse.Namespace], None]] = {
    "chrome": _chrome,
    "otel": _otel,
    "prometheus": _prometheus,
    "parquet": _parquet,
}


def cmd_export(args: argparse.Namespace) -> int:
    """``lifecycle-trace export``: write the log in another tool's format, in one streaming pass."""
    if args.row_group_size < 1:
        raise UsageError(f"--row-group-size must be 1 or more, got {args.row_group_size}")
    if args.epoch_ns is not None and not 0 <= args.epoch_ns <= INT64_MAX:
        # Span times are unsigned 64-bit nanoseconds: event times (up to 2**63-1) plus this.
        raise UsageError(
            f"--epoch-ns must be wall-clock nanoseconds from 0 to {INT64_MAX}, got {args.epoch_ns}"
        )
    with open_log(args.log, args.lenient) as log:
        _WRITERS[args.format](log, args)
    if args.output is not None:
        print(f"{args.format} export of {log.num_records} events written to {args.output}")
    return 0


def cmd_plot(args: argparse.Namespace) -> int:
    """``lifecycle-trace plot``: draw the log's first requests as an SVG or HTML timeline."""
    if args.limit < 0:
        raise ValueError(f"--limit must be 0 (all) or more, got {args.limit}")
    plot_format(args.output)  # a wrong suffix is refused before the log is read
    check_output(args.output, inputs=[args.log])  # before the log is read
    with open_log(args.log, args.lenient) as log:
        picture = picture_of(log.source(), args.limit)
    kind = write_plot(picture, args.output, title=args.title, inputs=[args.log])
    print(f"{kind.upper()} timeline of {args.log} written to {args.output}")
    if picture.num_left_out:
        print(
            f"drew {len(picture.timelines)} of {picture.num_requests} requests (the first "
            f"added); --limit N to draw more (0 for all)"
        )
    return 0


COMMANDS: Mapping[str, Callable[[argparse.Namespace], int]] = {
    "export": cmd_export,
    "plot": cmd_plot,
}
"""Handlers of the subcommands :func:`add_commands` adds, by name."""
