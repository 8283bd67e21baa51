"""Latency summaries over timelines: TTFT, TPOT, queue and end-to-end time, as vLLM reports them."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence

import attrs

from lifecycle_trace.timeline import Timeline

__all__ = ["METRICS", "Summary", "summarize", "summarize_timelines"]


@attrs.frozen
class Summary:
    """Distribution of one metric over requests, in nanoseconds (nearest-rank percentiles)."""

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


def _rank(ordered: Sequence[float], q: float) -> float:
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def summarize(name: str, values: Iterable[float]) -> Summary | None:
    """Summarise ``values`` (None if there are none)."""
    ordered = sorted(values)
    if not ordered:
        return None
    return Summary(
        name=name,
        count=len(ordered),
        mean=sum(ordered) / len(ordered),
        p50=_rank(ordered, 0.50),
        p90=_rank(ordered, 0.90),
        p99=_rank(ordered, 0.99),
        max=ordered[-1],
    )


def summarize_timelines(timelines: Iterable[Timeline]) -> dict[str, Summary | None]:
    """One :class:`Summary` per metric of :data:`METRICS`, over requests that have it."""
    items = list(timelines)
    out: dict[str, Summary | None] = {}
    for name, metric in METRICS.items():
        values = [v for v in map(metric, items) if v is not None]
        out[name] = summarize(name, values)
    return out
