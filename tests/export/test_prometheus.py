"""Prometheus: vLLM's metric names projected from events, read back from the exposition text."""

from __future__ import annotations

from collections import Counter

import pytest

pytest.importorskip("prometheus_client", reason="the 'prometheus' extra is not installed")

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from helpers.export import run_workload_logged
from lifecycle_trace.cli._demo import demo_workload
from lifecycle_trace.eventlog import EventLog
from lifecycle_trace.export.prometheus import (
    TTFT_BUCKETS,
    PrometheusProjection,
    project_metrics,
)
from lifecycle_trace.fold.timeline import build_timelines
from lifecycle_trace.testing import FakeClock
from minivllm.engine.llm_engine import LLMEngine
from minivllm.events import EngineConfigured, Event, StepFinished
from minivllm.sampling_params import SamplingParams
from minivllm.workload import Workload, WorkloadRequest, run_workload

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def _samples(registry: CollectorRegistry) -> Samples:
    text = generate_latest(registry).decode()
    out: Samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name.endswith("_created"):
                continue  # wall-clock creation times, not projections of the log
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


BASE = (("engine", "0"), ("model_name", "minivllm"))


def _get(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, tuple(sorted((*BASE, *labels.items()))))]


def test_gauges_follow_the_last_step(demo_events: list[Event]) -> None:
    registry = CollectorRegistry()
    project_metrics(demo_events[: len(demo_events) // 2], registry)
    last = [e for e in demo_events[: len(demo_events) // 2] if isinstance(e, StepFinished)][-1]
    config = next(e for e in demo_events if isinstance(e, EngineConfigured))
    s = _samples(registry)
    assert _get(s, "vllm:num_requests_running") == last.num_running
    assert _get(s, "vllm:num_requests_waiting") == last.num_waiting
    usage = last.num_used_blocks / (config.num_gpu_blocks - 1)
    assert _get(s, "vllm:kv_cache_usage_perc") == pytest.approx(usage)


def test_counters_count_preemptions_and_finishes_by_reason(demo_events: list[Event]) -> None:
    registry = CollectorRegistry()
    project_metrics(demo_events, registry)
    s = _samples(registry)
    timelines = build_timelines(demo_events).values()
    preemptions = sum(t.num_preemptions for t in timelines)
    assert preemptions > 0
    assert _get(s, "vllm:num_preemptions_total") == preemptions
    reasons = Counter(t.finish_reason for t in timelines)
    for reason, n in reasons.items():
        assert reason is not None
        assert _get(s, "vllm:request_success_total", finished_reason=reason) == n


def test_histograms_hold_each_requests_latencies(demo_events: list[Event]) -> None:
    registry = CollectorRegistry()
    project_metrics(demo_events, registry)
    s = _samples(registry)
    timelines = list(build_timelines(demo_events).values())
    for metric, values in (
        ("vllm:time_to_first_token_seconds", [t.ttft_ns for t in timelines]),
        ("vllm:request_queue_time_seconds", [t.queue_time_ns for t in timelines]),
        ("vllm:e2e_request_latency_seconds", [t.e2e_time_ns for t in timelines]),
    ):
        seconds = [v / 1e9 for v in values if v is not None]
        assert _get(s, f"{metric}_count") == len(seconds)
        assert _get(s, f"{metric}_sum") == pytest.approx(sum(seconds))
    first = TTFT_BUCKETS[0]
    below = sum(1 for t in timelines if t.ttft_ns is not None and t.ttft_ns / 1e9 <= first)
    assert _get(s, "vllm:time_to_first_token_seconds_bucket", le=str(first)) == below


def test_custom_buckets_spread_the_fake_clock(demo_events: list[Event]) -> None:
    registry = CollectorRegistry()
    projection = PrometheusProjection(registry, latency_buckets=(1e-4, 1e-3, 1e-2))
    projection.feed_all(demo_events)
    s = _samples(registry)
    e2e = [t.e2e_time_ns / 1e9 for t in build_timelines(demo_events).values() if t.e2e_time_ns]
    for le in (1e-4, 1e-3, 1e-2):
        expected = sum(1 for v in e2e if v <= le)
        assert _get(s, "vllm:e2e_request_latency_seconds_bucket", le=str(le)) == expected


def test_live_subscription_equals_replaying_the_log() -> None:
    live = CollectorRegistry()
    log = EventLog()
    projection = PrometheusProjection(live, model_name="demo")

    def attach(engine: LLMEngine) -> None:
        engine.bus.subscribe(log)
        engine.bus.subscribe(projection)

    for _ in run_workload(demo_workload(), on_engine=attach, clock=FakeClock()):
        pass
    replayed = CollectorRegistry()
    project_metrics(log, replayed, model_name="demo")
    assert _samples(live) == _samples(replayed)
    assert any(labels and dict(labels)["model_name"] == "demo" for _, labels in _samples(live))


def test_a_stream_starting_mid_run_is_refused(demo_events: list[Event]) -> None:
    start = len(demo_events) // 2
    with pytest.raises(ValueError, match="never added"):
        project_metrics(demo_events[start:], CollectorRegistry())


def test_one_projection_per_registry() -> None:
    registry = CollectorRegistry()
    PrometheusProjection(registry)
    with pytest.raises(ValueError, match="Duplicated"):
        PrometheusProjection(registry)


def test_stop_reason_label() -> None:
    workload = Workload(
        {"max_num_seqs": 2, "num_gpu_blocks": 64, "block_size": 4, "max_model_len": 64},
        [
            WorkloadRequest("s", [5] * 6, SamplingParams(max_tokens=8, stop_token_ids=(7,))),
            WorkloadRequest("l", [6] * 6, SamplingParams(max_tokens=3, ignore_eos=True)),
        ],
    )
    registry = CollectorRegistry()
    project_metrics(run_workload_logged(workload), registry)
    s = _samples(registry)
    assert _get(s, "vllm:request_success_total", finished_reason="stop") == 1
    assert _get(s, "vllm:request_success_total", finished_reason="length") == 1
