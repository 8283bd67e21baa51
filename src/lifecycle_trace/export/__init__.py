"""Exporters: the event log in the tools people already use, and as a picture.

- :mod:`~lifecycle_trace.export.chrome`: Chrome Trace Event JSON for
  ui.perfetto.dev (checked in the tests by
  :mod:`~lifecycle_trace.testing.chrome_check`);
- :mod:`~lifecycle_trace.export.otel`: OpenTelemetry ``llm_request`` spans as
  vLLM emits them, live or from a log, and :mod:`~lifecycle_trace.export.otlp_json`
  their OTLP/JSON file form (extra ``otel``);
- :mod:`~lifecycle_trace.export.prometheus`: vLLM's Prometheus metrics as
  projections of the event stream (extra ``prometheus``);
- :mod:`~lifecycle_trace.export.parquet`: the events and a per-request table
  as Parquet files (extra ``parquet``);
- :mod:`~lifecycle_trace.export.plot`: a self-contained SVG or HTML timeline.

Every exporter reads the fold (:mod:`lifecycle_trace.fold`): the time-based
ones its status intervals (and their cut into vLLM's phases), the picture its
timelines. Each folds as it reads and forgets a request once it has finished,
so a log of any length is exported in one pass, and each takes one engine's
events or a merged log's ``(engine_id, event)`` records. The optional
exporters are not imported here, so this package works without their extras.
"""

from lifecycle_trace.export.chrome import ChromeTraceStream
from lifecycle_trace.export.chrome import chrome_trace
from lifecycle_trace.export.chrome import write_chrome_trace
from lifecycle_trace.export.plot import picture_of
from lifecycle_trace.export.plot import timeline_html
from lifecycle_trace.export.plot import timeline_svg
from lifecycle_trace.export.plot import write_plot
from lifecycle_trace.fold.intervals import Finish
from lifecycle_trace.fold.intervals import IntervalFold
from lifecycle_trace.fold.intervals import RequestIntervals
from lifecycle_trace.fold.intervals import StatusInterval
from lifecycle_trace.fold.intervals import status_intervals
from lifecycle_trace.fold.phases import Phase
from lifecycle_trace.fold.phases import request_phases
from lifecycle_trace.testing.chrome_check import InvalidTraceError
from lifecycle_trace.testing.chrome_check import TraceProblem
from lifecycle_trace.testing.chrome_check import trace_problems
from lifecycle_trace.testing.chrome_check import validate_chrome_trace

__all__ = [
    "ChromeTraceStream",
    "Finish",
    "IntervalFold",
    "InvalidTraceError",
    "Phase",
    "RequestIntervals",
    "StatusInterval",
    "TraceProblem",
    "chrome_trace",
    "picture_of",
    "request_phases",
    "status_intervals",
    "timeline_html",
    "timeline_svg",
    "trace_problems",
    "validate_chrome_trace",
    "write_chrome_trace",
    "write_plot",
]
