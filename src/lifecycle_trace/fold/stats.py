"""Latency summaries over timelines: TTFT, TPOT, queue and end-to-end time, as vLLM reports them."""

from __future__ import annotations

import math
import statistics
from array import array
from collections.abc import Callable
from collections.abc import Iterable
from collections.abc import Mapping

import attrs

from lifecycle_trace.fold.timeline import Timeline

__all__ = ["METRICS", "StatsAccumulator", "Summary", "summarize", "summarize_timelines"]


@attrs.frozen
class Summary:
    """Distribution of one metric over requests, in nanoseconds.

    The percentiles are ``numpy.percentile``'s (linear interpolation between
    the closest ranks), as vLLM's serving benchmark computes them; the mean is
    ``statistics.fmean``'s.
    """

    name: str
    count: int
    mean: float
    p50: float
    p90: float
    p99: float
    max: float


METRICS: Mapping[str, Callable[[Timeline], float | None]] = {
    "queue": lambda t: t.queue_time_ns,
    "ttft": lambda t: t.ttft_ns,
    "tpot": lambda t: t.tpot_ns,
    "e2e": lambda t: t.e2e_time_ns,
}
"""The metrics :func:`summarize_timelines` reports, by name."""


def summarize(name: str, values: Iterable[float]) -> Summary | None:
    """Summarise ``values`` (None if there are none)."""
    data = sorted(values)
    if not data:
        return None
    return Summary(
        name=name,
        count=len(data),
        mean=statistics.fmean(data),
        p50=_percentile(data, 50),
        p90=_percentile(data, 90),
        p99=_percentile(data, 99),
        max=data[-1],
    )


def _percentile(data: list[float], q: float) -> float:
    """``numpy.percentile(data, q)`` of sorted ``data``, to the last bit.

    Written out rather than imported: numpy would add about 10 MiB and 0.1 s to
    every ``lifecycle-trace stats``. The same steps as numpy's linear method:
    rank ``(n - 1) * q / 100``, and its two-sided interpolation between the
    closest values (from the lower one below the midpoint, the upper one above).
    """
    rank = (len(data) - 1) * (q / 100)
    below = math.floor(rank)
    lower, upper = data[below], data[min(below + 1, len(data) - 1)]
    gamma = rank - below
    if gamma >= 0.5:
        return upper - (upper - lower) * (1 - gamma)
    return lower + (upper - lower) * gamma


def summarize_timelines(timelines: Iterable[Timeline]) -> dict[str, Summary | None]:
    """One :class:`Summary` per metric of :data:`METRICS`, over requests that have it."""
    items = list(timelines)
    out: dict[str, Summary | None] = {}
    for name, metric in METRICS.items():
        values = [v for v in map(metric, items) if v is not None]
        out[name] = summarize(name, values)
    return out


class StatsAccumulator:
    """:func:`summarize_timelines` over a stream: keeps each metric's values, not the timelines.

    Exact percentiles need every value, so memory is one float per request and
    metric (a few dozen bytes per request), against kilobytes per request in the log.
    """

    def __init__(self) -> None:
        self.num_requests = 0
        self.num_finished = 0
        self.num_preemptions = 0
        self._values: dict[str, array[float]] = {name: array("d") for name in METRICS}

    def add(self, timeline: Timeline) -> None:
        """Count one request and keep its metrics."""
        self.num_requests += 1
        self.num_finished += timeline.finished
        self.num_preemptions += timeline.num_preemptions
        for name, metric in METRICS.items():
            value = metric(timeline)
            if value is not None:
                self._values[name].append(value)

    def summaries(self) -> dict[str, Summary | None]:
        """One :class:`Summary` per metric of :data:`METRICS`, as :func:`summarize_timelines`."""
        return {name: summarize(name, values) for name, values in self._values.items()}
