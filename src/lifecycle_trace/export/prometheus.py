"""vLLM's Prometheus metrics as projections of the event stream (extra ``prometheus``).

A :class:`PrometheusProjection` is a bus handler: subscribe it to a live
engine, or feed it a stored log with :meth:`PrometheusProjection.feed_all`.
It registers vLLM's metric names, with vLLM's ``model_name`` and ``engine``
labels and bucket boundaries, on the registry the caller gives:

===================================  =========  ======================================
metric                               type       projected from
===================================  =========  ======================================
``vllm:num_requests_running``        gauge      ``StepFinished.num_running``
``vllm:num_requests_waiting``        gauge      ``StepFinished.num_waiting``
``vllm:kv_cache_usage_perc``         gauge      ``StepFinished.num_used_blocks`` over
                                                the usable blocks (a fraction, 0..1)
``vllm:num_preemptions``             counter    each RUNNING -> PREEMPTED change
``vllm:request_success``             counter    each finish, by ``finished_reason``
``vllm:time_to_first_token_seconds`` histogram  first ``num_tokens`` update - arrival
``vllm:request_queue_time_seconds``  histogram  first RUNNING - arrival, at finish
``vllm:e2e_request_latency_seconds`` histogram  finish - arrival, at finish
===================================  =========  ======================================

Times are the events' ``ts_ns`` differences, in seconds. Counters are exposed
with prometheus_client's ``_total`` suffix, as vLLM's are.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from minivllm.events import (
    CounterUpdated,
    EngineConfigured,
    Event,
    RequestAdded,
    StatusChanged,
    StepFinished,
)
from minivllm.request import RequestStatus

__all__ = [
    "REQUEST_LATENCY_BUCKETS",
    "TTFT_BUCKETS",
    "PrometheusProjection",
    "project_metrics",
]

TTFT_BUCKETS: Sequence[float] = (
    0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0,
    2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0, 160.0, 640.0, 2560.0,
)  # fmt: skip
"""vLLM's bucket boundaries for ``vllm:time_to_first_token_seconds``."""

REQUEST_LATENCY_BUCKETS: Sequence[float] = (
    0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0,
    50.0, 60.0, 120.0, 240.0, 480.0, 960.0, 1920.0, 7680.0,
)  # fmt: skip
"""vLLM's bucket boundaries for the queue-time and end-to-end histograms."""

_LABELS = ("model_name", "engine")


class PrometheusProjection:
    """A bus handler that keeps vLLM's metrics up to date on ``registry``.

    Registering the same metric names twice on one registry fails
    (``ValueError`` from prometheus_client), so use one projection per registry.
    ``ttft_buckets`` and ``latency_buckets`` override vLLM's boundaries, which
    suit real models; minivllm's dummy model is far faster.
    """

    def __init__(
        self,
        registry: CollectorRegistry,
        *,
        model_name: str = "minivllm",
        engine: str = "0",
        ttft_buckets: Sequence[float] = TTFT_BUCKETS,
        latency_buckets: Sequence[float] = REQUEST_LATENCY_BUCKETS,
    ) -> None:
        if not isinstance(registry, CollectorRegistry):
            raise TypeError(
                f"registry must be a prometheus_client CollectorRegistry, got {registry!r}"
            )
        labels = {"model_name": model_name, "engine": engine}

        def gauge(name: str, doc: str) -> Gauge:
            return Gauge(name, doc, _LABELS, registry=registry).labels(**labels)

        def histogram(name: str, doc: str, buckets: Sequence[float]) -> Histogram:
            return Histogram(name, doc, _LABELS, registry=registry, buckets=buckets).labels(
                **labels
            )

        self.running = gauge(
            "vllm:num_requests_running", "Number of requests in model execution batches."
        )
        self.waiting = gauge(
            "vllm:num_requests_waiting", "Number of requests waiting to be processed."
        )
        self.kv_usage = gauge(
            "vllm:kv_cache_usage_perc", "KV-cache usage. 1 means 100 percent usage."
        )
        self.preemptions = Counter(
            "vllm:num_preemptions",
            "Cumulative number of preemption from the engine.",
            _LABELS,
            registry=registry,
        ).labels(**labels)
        self._success = Counter(
            "vllm:request_success",
            "Count of successfully processed requests.",
            (*_LABELS, "finished_reason"),
            registry=registry,
        )
        self._labels = labels
        self.ttft = histogram(
            "vllm:time_to_first_token_seconds",
            "Histogram of time to first token in seconds.",
            ttft_buckets,
        )
        self.queue_time = histogram(
            "vllm:request_queue_time_seconds",
            "Histogram of time spent in WAITING phase for request.",
            latency_buckets,
        )
        self.e2e = histogram(
            "vllm:e2e_request_latency_seconds",
            "Histogram of e2e request latency in seconds.",
            latency_buckets,
        )
        self._usable_blocks: int | None = None
        self._arrival: dict[str, int] = {}
        self._scheduled: dict[str, int] = {}
        self._awaiting_token: set[str] = set()

    def __call__(self, event: Event) -> None:
        """Project one event onto the metrics."""
        if isinstance(event, CounterUpdated):
            rid = event.request_id
            if event.counter == "num_tokens" and rid in self._awaiting_token:
                self._awaiting_token.discard(rid)
                self.ttft.observe((event.ts_ns - self._arrival[rid]) / 1e9)
        elif isinstance(event, StatusChanged):
            self._on_status(event)
        elif isinstance(event, StepFinished):
            self.running.set(event.num_running)
            self.waiting.set(event.num_waiting)
            if self._usable_blocks:
                self.kv_usage.set(event.num_used_blocks / self._usable_blocks)
        elif isinstance(event, RequestAdded):
            self._arrival[event.request_id] = event.ts_ns
            self._awaiting_token.add(event.request_id)
        elif isinstance(event, EngineConfigured):
            # Block 0 is the reserved null block, as in vLLM's pool.
            self._usable_blocks = event.num_gpu_blocks - 1

    def _on_status(self, e: StatusChanged) -> None:
        rid = e.request_id
        arrival = self._arrival.get(rid)
        if arrival is None:
            raise ValueError(
                f"seq {e.seq}: status change of request {rid!r}, which was never added "
                f"(does the stream start mid-run?)"
            )
        if e.new_status == RequestStatus.RUNNING:
            self._scheduled.setdefault(rid, e.ts_ns)
        elif e.new_status == RequestStatus.PREEMPTED:
            self.preemptions.inc()
        elif RequestStatus.is_finished(e.new_status):
            reason = RequestStatus.get_finished_reason(e.new_status) or e.new_status.name
            self._success.labels(**self._labels, finished_reason=reason).inc()
            self.e2e.observe((e.ts_ns - arrival) / 1e9)
            scheduled = self._scheduled.pop(rid, None)
            if scheduled is not None:
                self.queue_time.observe((scheduled - arrival) / 1e9)
            del self._arrival[rid]
            self._awaiting_token.discard(rid)

    def feed_all(self, events: Iterable[Event]) -> None:
        """Project a whole log (or any ordered run of events)."""
        for event in events:
            self(event)


def project_metrics(
    events: Iterable[Event],
    registry: CollectorRegistry,
    *,
    model_name: str = "minivllm",
    engine: str = "0",
) -> PrometheusProjection:
    """Project a stored log onto vLLM's metrics on ``registry``; return the projection."""
    projection = PrometheusProjection(registry, model_name=model_name, engine=engine)
    projection.feed_all(events)
    return projection
