"""Exporters: the event log in the tools people already use, and as a picture.

- :mod:`~lifecycle_trace.export.chrome`: Chrome Trace Event JSON for
  ui.perfetto.dev and chrome://tracing, checked by
  :mod:`~lifecycle_trace.export.chrome_check`;
- :mod:`~lifecycle_trace.export.otel`: one OpenTelemetry ``llm_request`` span
  per finished request, with vLLM's attribute names (extra ``otel``);
- :mod:`~lifecycle_trace.export.prometheus`: vLLM's Prometheus metrics as
  projections of the event stream (extra ``prometheus``);
- :mod:`~lifecycle_trace.export.plot`: a self-contained SVG or HTML timeline.

The time-based exporters read one view of the log,
:func:`~lifecycle_trace.export.intervals.status_intervals` (and its cut into
vLLM's phases, :func:`~lifecycle_trace.export.phases.request_phases`); the
Chrome trace and the spans are built from its streaming form,
:class:`~lifecycle_trace.export.intervals.IntervalFold`, which forgets each
request once it has finished, so they export a log of any length in one pass.
The ``lifecycle-trace export`` and ``plot`` commands live in ``_cli``. The two
optional exporters are not imported here, so this package works without their
extras.
"""

from lifecycle_trace.export.chrome import ChromeTraceStream, chrome_trace, write_chrome_trace
from lifecycle_trace.export.chrome_check import (
    InvalidTraceError,
    TraceProblem,
    trace_problems,
    validate_chrome_trace,
)
from lifecycle_trace.export.intervals import (
    Finish,
    IntervalFold,
    RequestIntervals,
    StatusInterval,
    status_intervals,
)
from lifecycle_trace.export.phases import Phase, request_phases
from lifecycle_trace.export.plot import timeline_html, timeline_svg, write_plot

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
    "request_phases",
    "status_intervals",
    "timeline_html",
    "timeline_svg",
    "trace_problems",
    "validate_chrome_trace",
    "write_chrome_trace",
    "write_plot",
]
