"""vLLM's Prometheus metrics as projections of the event stream (extra ``prometheus``).

A :class:`PrometheusProjection` is a bus handler: subscribe it to a live engine
(:func:`attach_prometheus`), or feed it a stored log with
:meth:`PrometheusProjection.feed_all` (or a merged log's records with
:meth:`PrometheusProjection.feed_records`, one ``engine`` label per engine).
It exposes, on the registry the caller gives, every metric of vLLM 0.22.1's
``/metrics`` that an event log can give, with vLLM's names, types, help texts,
labels (``model_name``, ``engine`` and the metric's own) and buckets; see
:data:`METRICS` and ``docs/exporters.md`` for where each value comes from.

As on vLLM's server: every series exists from the start (the finish reasons
``stop``, ``length``, ``abort``, ``error``, ``repetition`` at 0 included), no
``*_created`` series are exposed (vLLM's server collects in multiprocess
mode, which has none), counters carry the ``_total`` suffix, and the
histograms of token counts have ``1, 2, 5, 10, 20, ...`` buckets up to the
engine's ``max_model_len``. The ``engine`` label is the log's engine id.

What is counted follows vLLM's output processor: a request aborted by the
client (``abort_request``) is forgotten there, so it adds nothing to
``vllm:request_success`` (whose ``abort`` series stays at 0 for such aborts)
nor to the per-request histograms, while its tokens, its first-token latency
and its preemptions, already recorded, stay counted. ``vllm:iteration_tokens_total``
is observed once per engine step that sampled a token (vLLM records iteration
stats only for steps with outputs): the prompt tokens of the requests that got
their first token in it plus the tokens it sampled.

Not produced (7 of vLLM's 37): ``vllm:prefix_cache_queries`` and
``vllm:prefix_cache_hits`` (vLLM counts every prefix-cache lookup, including
those of a request that then fails to be admitted and is looked up again in a
later step; the log records only the admissions), ``vllm:kv_block_lifetime_seconds``,
``vllm:kv_block_idle_before_evict_seconds`` and ``vllm:kv_block_reuse_gap_seconds``
(only with ``--kv-cache-metrics``, from block evictions the log does not
record), ``vllm:corrupted_requests`` (only with ``VLLM_COMPUTE_NANS_IN_LOGITS``)
and ``vllm:lora_requests_info`` (only with LoRA).

Times are the events' ``ts_ns`` differences, in seconds.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterable
from collections.abc import Iterator
from collections.abc import Sequence
from importlib import resources
from typing import TYPE_CHECKING
from typing import Any
from typing import NamedTuple
from typing import cast

from prometheus_client import CollectorRegistry
from prometheus_client import Counter
from prometheus_client import Gauge
from prometheus_client import Histogram
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from lifecycle_trace.fold.requests import Record
from lifecycle_trace.fold.requests import RequestFold
from lifecycle_trace.fold.requests import RequestState
from lifecycle_trace.fold.requests import Source
from lifecycle_trace.fold.requests import engine_runs
from lifecycle_trace.fold.requests import peek_records
from minivllm.events import CounterUpdated
from minivllm.events import EngineConfigured
from minivllm.events import Event
from minivllm.events import StepFinished
from minivllm.request import RequestStatus

if TYPE_CHECKING:
    from minivllm.bus import Subscription
    from minivllm.engine.llm_engine import LLMEngine

__all__ = [
    "FINISH_REASONS",
    "ITERATION_TOKENS_BUCKETS",
    "METRICS",
    "REQUEST_LATENCY_BUCKETS",
    "TOKEN_LATENCY_BUCKETS",
    "TTFT_BUCKETS",
    "MetricSpec",
    "PrometheusProjection",
    "attach_prometheus",
    "build_1_2_5_buckets",
    "project_metrics",
]

TTFT_BUCKETS: Sequence[float] = (
    0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0,
    2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0, 160.0, 640.0, 2560.0,
)  # fmt: skip
"""vLLM's bucket boundaries for ``vllm:time_to_first_token_seconds``."""

TOKEN_LATENCY_BUCKETS: Sequence[float] = (
    0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0,
    2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0,
)  # fmt: skip
"""vLLM's buckets for the inter-token latency and the time per output token."""

REQUEST_LATENCY_BUCKETS: Sequence[float] = (
    0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0,
    50.0, 60.0, 120.0, 240.0, 480.0, 960.0, 1920.0, 7680.0,
)  # fmt: skip
"""vLLM's buckets for the e2e, queue, inference, prefill and decode times."""

ITERATION_TOKENS_BUCKETS: Sequence[float] = (
    1, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384,
)  # fmt: skip
"""vLLM's buckets for ``vllm:iteration_tokens_total``."""

N_BUCKETS: Sequence[float] = (1, 2, 5, 10, 20)
"""vLLM's buckets for ``vllm:request_params_n``."""

FINISH_REASONS = ("stop", "length", "abort", "error", "repetition")
"""vLLM's ``FinishReason`` values as label values, in its order."""

_LABELS = ("model_name", "engine")
_WAITING_REASONS = ("capacity", "deferred")
_SLEEP_STATES = ("awake", "weights_offloaded", "discard_all")
_PROMPT_SOURCES = ("local_compute", "local_cache_hit", "external_kv_transfer")


def build_1_2_5_buckets(max_value: int) -> list[int]:
    """vLLM's ``build_1_2_5_buckets``: 1, 2, 5, 10, 20, 50, ... up to ``max_value``."""
    buckets: list[int] = []
    for exponent in itertools.count():
        for mantissa in (1, 2, 5):
            value = mantissa * 10**exponent
            if value > max_value:
                return buckets
            buckets.append(value)
    raise AssertionError("unreachable")  # pragma: no cover


class MetricSpec(NamedTuple):
    """One of vLLM's metrics: its kind, name, help text, extra label and buckets."""

    kind: str
    """``"gauge"``, ``"counter"`` or ``"histogram"``."""
    name: str
    documentation: str
    label: str | None = None
    """The label beyond ``model_name`` and ``engine``, if any."""
    buckets: str | None = None
    """Histograms: ``"ttft"``, ``"token"``, ``"latency"``, ``"iteration"``, ``"n"`` or
    ``"1-2-5"`` (up to ``max_model_len``)."""


def _load_metrics() -> tuple[MetricSpec, ...]:
    """Read vLLM's metric catalogue, kept as data beside this module."""
    text = (
        resources.files("lifecycle_trace.export").joinpath("vllm_metrics.json").read_text("utf-8")
    )
    return tuple(MetricSpec(**row) for row in json.loads(text))


METRICS: tuple[MetricSpec, ...] = _load_metrics()
"""Every metric produced, as vLLM 0.22.1's ``PrometheusStatLogger`` declares it, in its order
(``vllm_metrics.json``)."""

# The values each extra label takes; vLLM creates every series up front.
_LABEL_VALUES = {
    "reason": _WAITING_REASONS,
    "sleep_state": _SLEEP_STATES,
    "source": _PROMPT_SOURCES,
    "finished_reason": FINISH_REASONS,
}
_ABORTED = RequestStatus.FINISHED_ABORTED
_PREEMPTED = RequestStatus.PREEMPTED


class _Families(Collector):
    """The metric families, exposed on the caller's registry without ``*_created`` samples.

    The families are built unregistered, once ``max_model_len`` is known (it
    sets the token-count buckets); this collector stands for them on the
    registry and names them up front, so a second projection on the same
    registry is refused at once.
    """

    def __init__(self, buckets: dict[str, Sequence[float]]) -> None:
        self._buckets = buckets
        self.by_name: dict[str, Any] = {}

    def build(self, max_model_len: int) -> None:
        """Make the families (once) with the buckets ``max_model_len`` gives."""
        if self.by_name:
            return
        buckets = {**self._buckets, "1-2-5": build_1_2_5_buckets(max_model_len)}
        for spec in METRICS:
            labels = (*_LABELS, spec.label) if spec.label else _LABELS
            family: Any
            if spec.kind == "gauge":
                family = Gauge(spec.name, spec.documentation, labels, registry=None)
            elif spec.kind == "counter":
                family = Counter(spec.name, spec.documentation, labels, registry=None)
            else:
                assert spec.buckets is not None
                family = Histogram(
                    spec.name,
                    spec.documentation,
                    labels,
                    registry=None,
                    buckets=buckets[spec.buckets],
                )
            self.by_name[spec.name] = family

    def describe(self) -> Iterable[Metric]:
        """The families' names and types, for the registry's duplicate check."""
        return [Metric(spec.name, spec.documentation, spec.kind) for spec in METRICS]

    def collect(self) -> Iterator[Metric]:
        """Every family's samples but the ``*_created`` ones."""
        for family in self.by_name.values():
            for metric in family.collect():
                metric.samples = [s for s in metric.samples if not s.name.endswith("_created")]
                yield metric


class _EngineMetrics:
    """One engine's series of every family, and the fold of its requests."""

    def __init__(
        self, families: _Families, model_name: str, engine: str, fold_engine: str | None
    ) -> None:
        def child(name: str, *extra: str) -> Any:
            return families.by_name[name].labels(model_name, engine, *extra)

        for spec in METRICS:  # every series, at 0, as vLLM creates them
            for value in _LABEL_VALUES.get(spec.label or "", ("",)):
                child(spec.name, *((value,) if spec.label else ()))
        child("vllm:engine_sleep_state", "awake").set(1)
        self.running = child("vllm:num_requests_running")
        self.waiting = child("vllm:num_requests_waiting")
        self.waiting_capacity = child("vllm:num_requests_waiting_by_reason", "capacity")
        self.kv_usage = child("vllm:kv_cache_usage_perc")
        self.preemptions = child("vllm:num_preemptions")
        self.prompt_tokens = child("vllm:prompt_tokens")
        self.prompt_computed = child("vllm:prompt_tokens_by_source", "local_compute")
        self.prompt_cache_hit = child("vllm:prompt_tokens_by_source", "local_cache_hit")
        self.prompt_cached = child("vllm:prompt_tokens_cached")
        self.generation_tokens = child("vllm:generation_tokens")
        self.success = {r: child("vllm:request_success", r) for r in FINISH_REASONS}
        self.request_prompt_tokens = child("vllm:request_prompt_tokens")
        self.request_generation_tokens = child("vllm:request_generation_tokens")
        self.iteration_tokens = child("vllm:iteration_tokens_total")
        self.max_generation_tokens = child("vllm:request_max_num_generation_tokens")
        self.params_n = child("vllm:request_params_n")
        self.params_max_tokens = child("vllm:request_params_max_tokens")
        self.ttft = child("vllm:time_to_first_token_seconds")
        self.itl = child("vllm:inter_token_latency_seconds")
        self.tpot = child("vllm:request_time_per_output_token_seconds")
        self.e2e = child("vllm:e2e_request_latency_seconds")
        self.queue_time = child("vllm:request_queue_time_seconds")
        self.inference_time = child("vllm:request_inference_time_seconds")
        self.prefill_time = child("vllm:request_prefill_time_seconds")
        self.decode_time = child("vllm:request_decode_time_seconds")
        self.prefill_kv_computed = child("vllm:request_prefill_kv_computed_tokens")
        # The step whose sampled tokens are being added up, and their sum so far.
        self._iteration_step = -1
        self._iteration_tokens = 0
        self.fold = RequestFold(
            fold_engine,
            on_status=self._on_status,
            on_first_token=self._on_first_token,
            on_next_token=self._on_next_token,
            on_finish=self._on_finish,
            keep_finished=False,
            history=False,
        )

    def __call__(self, event: Event) -> None:
        self.fold.feed(event)
        if type(event) is StepFinished:
            self._gauges(event)
            self.flush_iteration(event.step)

    def feed_all(self, events: Iterable[Event]) -> None:
        """A stored run of events: the fold's fast path, the gauges set from the last step."""
        fold = self.fold
        fold.feed_all(events)
        last = fold.last_step_finished
        if last is not None:
            self._gauges(last)
            self.flush_iteration(last.step)

    def flush_iteration(self, step: int | None = None) -> None:
        """Observe the pending step's iteration tokens if that step (``<= step``) is over."""
        if self._iteration_tokens and (step is None or self._iteration_step <= step):
            self.iteration_tokens.observe(self._iteration_tokens)
            self._iteration_tokens = 0

    def _count_iteration(self, step: int, tokens: int) -> None:
        if step != self._iteration_step:
            self.flush_iteration()
            self._iteration_step = step
        self._iteration_tokens += tokens

    def _gauges(self, e: StepFinished) -> None:
        self.running.set(e.num_running)
        self.waiting.set(e.num_waiting)
        self.waiting_capacity.set(e.num_waiting)
        config = self.fold.config
        # vLLM's BlockPool.get_usage: block 0 is the reserved null block.
        if config is not None and config.num_gpu_blocks > 1:
            self.kv_usage.set(e.num_used_blocks / (config.num_gpu_blocks - 1))

    def _on_status(self, t: RequestState) -> None:
        if t.status is _PREEMPTED:
            self.preemptions.inc()

    def _on_first_token(self, t: RequestState) -> None:
        assert t.first_token_ns is not None and t.first_token_step is not None
        # vLLM counts a request's prompt with its first output (its prefill stats).
        prompt, cached = t.num_prompt_tokens, t.num_cached_tokens
        self.prompt_tokens.inc(prompt)
        self.prompt_computed.inc(prompt - cached)
        self.prompt_cache_hit.inc(cached)
        self.prompt_cached.inc(cached)
        self.generation_tokens.inc()
        self.ttft.observe((t.first_token_ns - t.arrival_ns) / 1e9)
        self._count_iteration(t.first_token_step, prompt + 1)

    def _on_next_token(self, t: RequestState, e: CounterUpdated) -> None:
        self.generation_tokens.inc()
        assert t.last_token_ns is not None  # set with the first token
        self.itl.observe((e.ts_ns - t.last_token_ns) / 1e9)
        self._count_iteration(e.step, 1)

    def _on_finish(self, t: RequestState) -> None:
        if t.finish_status is _ABORTED:
            return  # vLLM's output processor drops a client's abort before any stats
        reason = t.finish_reason
        assert reason is not None and t.finished_ns is not None
        self.success[reason].inc()
        arrival = t.arrival_ns
        scheduled = t.first_scheduled_ns if t.first_scheduled_ns is not None else arrival
        first = t.first_token_ns if t.first_token_ns is not None else scheduled
        last = t.last_token_ns if t.last_token_ns is not None else first
        generated = t.num_output_tokens
        decode = (last - first) / 1e9
        self.e2e.observe((t.finished_ns - arrival) / 1e9)
        self.queue_time.observe((scheduled - arrival) / 1e9)
        self.prefill_time.observe((first - scheduled) / 1e9)
        self.inference_time.observe((last - scheduled) / 1e9)
        self.decode_time.observe(decode)
        self.prefill_kv_computed.observe(t.num_prompt_tokens - t.num_cached_tokens)
        self.request_prompt_tokens.observe(t.num_prompt_tokens)
        self.request_generation_tokens.observe(generated)
        self.tpot.observe(decode / (generated - 1) if generated > 1 else 0.0)
        if t.max_tokens:
            self.params_max_tokens.observe(t.max_tokens)
        # One sequence per request (n=1): its own token count is the maximum over its n.
        self.max_generation_tokens.observe(generated)
        self.params_n.observe(t.n)


class PrometheusProjection:
    """A bus handler that keeps vLLM's metrics up to date on ``registry``.

    ``engine`` is the ``engine`` label of events fed one by one or with
    :meth:`feed_all`; by default it is the log's engine id (from its
    ``EngineConfigured``), and :meth:`feed_records` labels each engine of a
    merged log with its own id. ``max_model_len`` sets the token-count
    buckets, by default from the log's ``EngineConfigured``; the series exist
    once both are known. One projection per registry (a second one is refused
    with prometheus_client's ``ValueError``). ``ttft_buckets`` and
    ``latency_buckets`` override vLLM's boundaries, which suit real models;
    minivllm's dummy model is far faster.
    """

    def __init__(
        self,
        registry: CollectorRegistry,
        *,
        model_name: str = "minivllm",
        engine: str | None = None,
        max_model_len: int | None = None,
        ttft_buckets: Sequence[float] = TTFT_BUCKETS,
        latency_buckets: Sequence[float] = REQUEST_LATENCY_BUCKETS,
    ) -> None:
        if not isinstance(registry, CollectorRegistry):
            raise TypeError(
                f"registry must be a prometheus_client CollectorRegistry, got {registry!r}"
            )
        self.model_name = model_name
        self._families = _Families(
            {
                "ttft": ttft_buckets,
                "token": TOKEN_LATENCY_BUCKETS,
                "latency": latency_buckets,
                "iteration": ITERATION_TOKENS_BUCKETS,
                "n": N_BUCKETS,
            }
        )
        registry.register(self._families)
        self._engine = engine
        self._single: _EngineMetrics | None = None
        self._engines: dict[str, _EngineMetrics] = {}
        if max_model_len is not None:
            self._families.build(max_model_len)
            if engine is not None:
                self._single = self._metrics(engine, None)

    def _metrics(self, engine: str, fold_engine: str | None) -> _EngineMetrics:
        return _EngineMetrics(self._families, self.model_name, engine, fold_engine)

    def _one_engine(self, first: Event) -> _EngineMetrics:
        if self._single is None:
            config = first if type(first) is EngineConfigured else None
            # A log opens with its EngineConfigured; without one, minivllm's defaults.
            max_model_len = config.max_model_len if config is not None else 1024
            self._families.build(max_model_len)
            engine = self._engine
            if engine is None:
                engine = config.engine_id if config is not None else ""
            self._single = self._metrics(engine, None)
        return self._single

    def __call__(self, event: Event) -> None:
        """Project one event onto the metrics."""
        metrics = self._single or self._one_engine(event)
        metrics(event)

    def feed_all(self, events: Iterable[Event]) -> None:
        """Project a whole log (or any ordered run of events)."""
        items = iter(events)
        first = next(items, None)
        if first is None:
            return
        self._one_engine(first).feed_all(itertools.chain((first,), items))

    def feed_records(self, records: Iterable[Record]) -> None:
        """Project the ``(engine_id, event)`` records of a merged log, labelled by engine id."""
        engines = self._engines
        for engine, events in engine_runs(records)[1]:
            metrics = engines.get(engine)
            if metrics is None:
                first = next(events, None)
                if first is None:
                    continue
                events = itertools.chain((first,), events)
                config = first if type(first) is EngineConfigured else None
                self._families.build(config.max_model_len if config is not None else 1024)
                metrics = engines[engine] = self._metrics(engine, engine)
            metrics.feed_all(events)

    def close(self) -> None:
        """The end of the stream: observe the tokens of a last step the log did not close."""
        for metrics in (self._single, *self._engines.values()):
            if metrics is not None:
                metrics.flush_iteration()


def attach_prometheus(
    engine: LLMEngine, registry: CollectorRegistry, *, model_name: str = "minivllm"
) -> tuple[PrometheusProjection, Subscription]:
    """Keep vLLM's metrics of a live engine on ``registry``, every series there from now on.

    The ``engine`` label is the engine's id; unsubscribe to stop.
    """
    projection = PrometheusProjection(
        registry,
        model_name=model_name,
        engine=engine.engine_id,
        max_model_len=engine.config.max_model_len,
    )
    subscription = engine.bus.subscribe(projection)
    return projection, subscription


def project_metrics(
    source: Source,
    registry: CollectorRegistry,
    *,
    model_name: str = "minivllm",
    engine: str | None = None,
) -> PrometheusProjection:
    """Project a stored log onto vLLM's metrics on ``registry``; return the projection.

    ``source`` is one engine's events (labelled ``engine``, by default the
    log's engine id) or the records of a merged log (each engine labelled
    with its id).
    """
    merged, source = peek_records(source)
    projection = PrometheusProjection(registry, model_name=model_name, engine=engine)
    if merged:
        projection.feed_records(cast(Iterable[Record], source))
    else:
        projection.feed_all(cast(Iterable[Event], source))
    projection.close()
    return projection
