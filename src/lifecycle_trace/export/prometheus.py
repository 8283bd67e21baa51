"""vLLM's Prometheus metrics as projections of the event stream (extra ``prometheus``).

A :class:`PrometheusProjection` is a bus handler: subscribe it to a live
engine, or feed it a stored log with :meth:`PrometheusProjection.feed_all`
(or a merged log's records with :meth:`PrometheusProjection.feed_records`,
one ``engine`` label per engine). Request latencies are read from the fold's
request states (:class:`~lifecycle_trace.fold.requests.RequestFold`).
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
from typing import cast

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from lifecycle_trace.fold.requests import (
    Record,
    RequestFold,
    RequestState,
    Source,
    engine_runs,
    peek_records,
)
from minivllm.events import Event, StepFinished
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


class _EngineMetrics:
    """One engine's children of the metric families, and the fold of its requests."""

    def __init__(self, projection: PrometheusProjection, engine: str, fold_engine: str | None):
        labels = {"model_name": projection.model_name, "engine": engine}
        self.labels = labels
        self.running = projection.running_family.labels(**labels)
        self.waiting = projection.waiting_family.labels(**labels)
        self.kv_usage = projection.kv_usage_family.labels(**labels)
        self.preemptions = projection.preemptions_family.labels(**labels)
        self.ttft = projection.ttft_family.labels(**labels)
        self.queue_time = projection.queue_time_family.labels(**labels)
        self.e2e = projection.e2e_family.labels(**labels)
        self._success = projection.success_family
        self.fold = RequestFold(
            fold_engine,
            on_status=self._on_status,
            on_first_token=self._on_first_token,
            on_finish=self._on_finish,
            keep_finished=False,
            history=False,
        )

    def __call__(self, event: Event) -> None:
        self.fold.feed(event)
        if type(event) is StepFinished:
            self._gauges(event)

    def feed_all(self, events: Iterable[Event]) -> None:
        """A stored run of events: the fold's fast path, the gauges set from the last step."""
        fold = self.fold
        fold.feed_all(events)
        if fold.last_step_finished is not None:
            self._gauges(fold.last_step_finished)

    def _gauges(self, e: StepFinished) -> None:
        self.running.set(e.num_running)
        self.waiting.set(e.num_waiting)
        config = self.fold.config
        # Block 0 is the reserved null block, as in vLLM's pool.
        if config is not None and config.num_gpu_blocks > 1:
            self.kv_usage.set(e.num_used_blocks / (config.num_gpu_blocks - 1))

    def _on_status(self, t: RequestState) -> None:
        if t.status is RequestStatus.PREEMPTED:
            self.preemptions.inc()

    def _on_first_token(self, t: RequestState) -> None:
        assert t.first_token_ns is not None  # set with the first token
        self.ttft.observe((t.first_token_ns - t.arrival_ns) / 1e9)

    def _on_finish(self, t: RequestState) -> None:
        reason = t.finish_reason or t.status.name
        self._success.labels(**self.labels, finished_reason=reason).inc()
        assert t.finished_ns is not None  # set with the finish status
        self.e2e.observe((t.finished_ns - t.arrival_ns) / 1e9)
        if t.first_scheduled_ns is not None:
            self.queue_time.observe((t.first_scheduled_ns - t.arrival_ns) / 1e9)


class PrometheusProjection:
    """A bus handler that keeps vLLM's metrics up to date on ``registry``.

    Registering the same metric names twice on one registry fails
    (``ValueError`` from prometheus_client), so use one projection per registry.
    ``ttft_buckets`` and ``latency_buckets`` override vLLM's boundaries, which
    suit real models; minivllm's dummy model is far faster. Events fed one by
    one (or with :meth:`feed_all`) are labelled ``engine``;
    :meth:`feed_records` labels each engine of a merged log with its own id
    (pass ``engine=None`` for a projection of records only).
    """

    def __init__(
        self,
        registry: CollectorRegistry,
        *,
        model_name: str = "minivllm",
        engine: str | None = "0",
        ttft_buckets: Sequence[float] = TTFT_BUCKETS,
        latency_buckets: Sequence[float] = REQUEST_LATENCY_BUCKETS,
    ) -> None:
        if not isinstance(registry, CollectorRegistry):
            raise TypeError(
                f"registry must be a prometheus_client CollectorRegistry, got {registry!r}"
            )
        self.model_name = model_name

        def gauge(name: str, doc: str) -> Gauge:
            return Gauge(name, doc, _LABELS, registry=registry)

        def histogram(name: str, doc: str, buckets: Sequence[float]) -> Histogram:
            return Histogram(name, doc, _LABELS, registry=registry, buckets=buckets)

        self.running_family = gauge(
            "vllm:num_requests_running", "Number of requests in model execution batches."
        )
        self.waiting_family = gauge(
            "vllm:num_requests_waiting", "Number of requests waiting to be processed."
        )
        self.kv_usage_family = gauge(
            "vllm:kv_cache_usage_perc", "KV-cache usage. 1 means 100 percent usage."
        )
        self.preemptions_family = Counter(
            "vllm:num_preemptions",
            "Cumulative number of preemption from the engine.",
            _LABELS,
            registry=registry,
        )
        self.success_family = Counter(
            "vllm:request_success",
            "Count of successfully processed requests.",
            (*_LABELS, "finished_reason"),
            registry=registry,
        )
        self.ttft_family = histogram(
            "vllm:time_to_first_token_seconds",
            "Histogram of time to first token in seconds.",
            ttft_buckets,
        )
        self.queue_time_family = histogram(
            "vllm:request_queue_time_seconds",
            "Histogram of time spent in WAITING phase for request.",
            latency_buckets,
        )
        self.e2e_family = histogram(
            "vllm:e2e_request_latency_seconds",
            "Histogram of e2e request latency in seconds.",
            latency_buckets,
        )
        self._single = None if engine is None else _EngineMetrics(self, engine, None)
        self._engines: dict[str, _EngineMetrics] = {}

    def _one_engine(self) -> _EngineMetrics:
        if self._single is None:
            raise ValueError(
                "this projection labels engines by their ids (engine=None): "
                "feed it records with feed_records"
            )
        return self._single

    def __call__(self, event: Event) -> None:
        """Project one event onto the metrics."""
        self._one_engine()(event)

    def feed_all(self, events: Iterable[Event]) -> None:
        """Project a whole log (or any ordered run of events)."""
        self._one_engine().feed_all(events)

    def feed_records(self, records: Iterable[Record]) -> None:
        """Project the ``(engine_id, event)`` records of a merged log, labelled by engine id."""
        engines = self._engines
        for engine, events in engine_runs(records)[1]:
            metrics = engines.get(engine)
            if metrics is None:
                metrics = engines[engine] = _EngineMetrics(self, engine, engine)
            metrics.feed_all(events)


def project_metrics(
    source: Source,
    registry: CollectorRegistry,
    *,
    model_name: str = "minivllm",
    engine: str = "0",
) -> PrometheusProjection:
    """Project a stored log onto vLLM's metrics on ``registry``; return the projection.

    ``source`` is one engine's events (labelled ``engine``) or the records
    of a merged log (each engine labelled with its id).
    """
    merged, source = peek_records(source)
    projection = PrometheusProjection(
        registry, model_name=model_name, engine=None if merged else engine
    )
    if merged:
        projection.feed_records(cast(Iterable[Record], source))
    else:
        projection.feed_all(cast(Iterable[Event], source))
    return projection
