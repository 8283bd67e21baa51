"""Exporters: the event log in the tools people already use, and as a picture.

- :mod:`~lifecycle_trace.export.chrome`: Chrome Trace Event JSON for
  ui.perfetto.dev and chrome://tracing, checked by
  :mod:`~lifecycle_trace.export.chrome_check`;
- :mod:`~lifecycle_trace.export.otel`: one OpenTelemetry ``llm_request`` span
  per finished request, with vLLM's attribute names (extra ``otel``);
- :mod:`~lifecycle_trace.export.prometheus`: vLLM's Prometheus metrics as
  projections of the event stream (extra ``prometheus``);
- :mod:`~lifecycle_trace.export.plot`: a self-contained SVG or HTML timeline.

All of them read the same time-based view of the log,
:func:`~lifecycle_trace.export.intervals.status_intervals`. The two optional
exporters are not imported here, so this package works without their extras.
"""

from lifecycle_trace.export.chrome import chrome_trace, write_chrome_trace
from lifecycle_trace.export.chrome_check import (
    InvalidTraceError,
    TraceProblem,
    trace_problems,
    validate_chrome_trace,
)
from lifecycle_trace.export.intervals import (
    Finish,
    RequestIntervals,
    StatusInterval,
    status_intervals,
)

__all__ = [
    "Finish",
    "InvalidTraceError",
    "RequestIntervals",
    "StatusInterval",
    "TraceProblem",
    "chrome_trace",
    "status_intervals",
    "trace_problems",
    "validate_chrome_trace",
    "write_chrome_trace",
]
