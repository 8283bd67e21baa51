"""Prometheus: vLLM 0.22.1's /metrics projected from events, read back with its parser."""

from __future__ import annotations

from collections import Counter
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("prometheus_client", reason="the 'prometheus' extra is not installed")

from hypothesis import given
from hypothesis import settings
from prometheus_client import CollectorRegistry
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from helpers.export import run_scenario_logged
from helpers.export import run_workload_logged
from lifecycle_trace.eventlog import EventLog
from lifecycle_trace.export.prometheus import METRICS
from lifecycle_trace.export.prometheus import PrometheusProjection
from lifecycle_trace.export.prometheus import attach_prometheus
from lifecycle_trace.export.prometheus import build_1_2_5_buckets
from lifecycle_trace.export.prometheus import project_metrics
from lifecycle_trace.testing import FakeClock
from lifecycle_trace.testing import Scenario
from lifecycle_trace.testing import scenarios
from minivllm.engine.llm_engine import LLMEngine
from minivllm.events import CounterUpdated
from minivllm.events import EngineConfigured
from minivllm.events import Event
from minivllm.events import RequestAdded
from minivllm.events import StatusChanged
from minivllm.events import StepFinished
from minivllm.request import RequestStatus
from minivllm.sampling_params import SamplingParams
from minivllm.workload import Workload
from minivllm.workload import WorkloadRequest
from minivllm.workload import run_workload

REFERENCE = Path(__file__).parent.parent / "data" / "vllm_metrics" / "fresh-0.22.1.prom"
NOT_FROM_THE_LOG = {"vllm:prefix_cache_queries", "vllm:prefix_cache_hits"}

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def _families(text: str) -> dict[str, Any]:
    return {f.name: f for f in text_string_to_metric_families(text)}


def _samples(registry: CollectorRegistry) -> Samples:
    out: Samples = {}
    for family in text_string_to_metric_families(generate_latest(registry).decode()):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def _get(samples: Samples, name: str, engine: str = "engine-0", **labels: str) -> float:
    key = (("engine", engine), ("model_name", "minivllm"), *labels.items())
    return samples[(name, tuple(sorted(key)))]


def _sample_set(family: Any) -> set[tuple[str, tuple[tuple[str, str], ...], float]]:
    return {(s.name, tuple(sorted(s.labels.items())), s.value) for s in family.samples}


def test_a_fresh_projection_is_vllms_fresh_exposition() -> None:
    registry = CollectorRegistry()
    PrometheusProjection(registry, model_name="m", engine="0", max_model_len=1024)
    ours = _families(generate_latest(registry).decode())
    theirs = _families(REFERENCE.read_text())
    assert set(ours) == set(theirs) - NOT_FROM_THE_LOG
    assert len(ours) == len(METRICS) == 30
    for name, family in ours.items():
        reference = theirs[name]
        assert (family.type, family.documentation) == (reference.type, reference.documentation)
        # Same series (every label value, every bucket boundary), at the same initial values.
        assert _sample_set(family) == _sample_set(reference), name


def test_no_created_series_and_counters_end_in_total(demo_events: list[Event]) -> None:
    registry = CollectorRegistry()
    project_metrics(demo_events, registry)
    text = generate_latest(registry).decode()
    assert "_created" not in text
    counters = [s.name for s in METRICS if s.kind == "counter"]
    for name in counters:
        assert f"# TYPE {name}_total counter" in text


def test_token_count_buckets_follow_max_model_len() -> None:
    assert build_1_2_5_buckets(100) == [1, 2, 5, 10, 20, 50, 100]
    assert build_1_2_5_buckets(1024)[-1] == 1000
    events = run_workload_logged(
        Workload({"max_model_len": 64}, [WorkloadRequest("r", [1] * 4, SamplingParams())])
    )
    registry = CollectorRegistry()
    project_metrics(events, registry)
    family = _families(generate_latest(registry).decode())["vllm:request_prompt_tokens"]
    bounds = [s.labels["le"] for s in family.samples if s.name.endswith("_bucket")]
    assert bounds == ["1.0", "2.0", "5.0", "10.0", "20.0", "50.0", "+Inf"]


def test_finish_reasons_exist_at_zero_before_any_request() -> None:
    registry = CollectorRegistry()
    engine = LLMEngine(engine_id="e1")
    attach_prometheus(engine, registry)
    s = _samples(registry)
    for reason in ("stop", "length", "abort", "error", "repetition"):
        assert _get(s, "vllm:request_success_total", "e1", finished_reason=reason) == 0
    assert _get(s, "vllm:engine_sleep_state", "e1", sleep_state="awake") == 1


def test_the_engine_label_is_the_engine_id(demo_events: list[Event]) -> None:
    config = next(e for e in demo_events if isinstance(e, EngineConfigured))
    registry = CollectorRegistry()
    project_metrics(demo_events, registry)
    engines = {dict(labels).get("engine") for _, labels in _samples(registry)}
    assert engines == {config.engine_id}
    relabelled = CollectorRegistry()
    project_metrics(demo_events, relabelled, engine="0")
    assert {dict(labels).get("engine") for _, labels in _samples(relabelled)} == {"0"}


class Expected:
    """What vLLM's stat loggers would record for a log, computed straight from its events."""

    def __init__(self, events: list[Event]) -> None:
        self.counters: Counter[str] = Counter()
        self.observed: defaultdict[str, list[float]] = defaultdict(list)
        self.success: Counter[str] = Counter()
        added: dict[str, RequestAdded] = {}
        first_run: dict[str, int] = {}
        tokens: defaultdict[str, list[int]] = defaultdict(list)
        cached: dict[str, int] = {}
        per_step: Counter[int] = Counter()
        for e in events:
            if isinstance(e, RequestAdded):
                added[e.request_id] = e
                tokens.pop(e.request_id, None)
                first_run.pop(e.request_id, None)
                cached[e.request_id] = 0
            elif isinstance(e, CounterUpdated) and e.counter == "num_cached_tokens":
                cached[e.request_id] = e.new
            elif isinstance(e, CounterUpdated) and e.counter == "num_tokens":
                seen = tokens[e.request_id]
                a = added[e.request_id]
                self.counters["generation"] += 1
                per_step[e.step] += 1
                if not seen:
                    self.counters["prompt"] += a.num_prompt_tokens
                    self.counters["cached"] += cached[e.request_id]
                    per_step[e.step] += a.num_prompt_tokens
                    self.observed["ttft"].append((e.ts_ns - a.ts_ns) / 1e9)
                else:
                    self.observed["itl"].append((e.ts_ns - seen[-1]) / 1e9)
                seen.append(e.ts_ns)
            elif isinstance(e, StatusChanged):
                rid = e.request_id
                if e.new_status is RequestStatus.RUNNING:
                    first_run.setdefault(rid, e.ts_ns)
                elif e.new_status is RequestStatus.PREEMPTED:
                    self.counters["preemptions"] += 1
                elif e.new_status > RequestStatus.PREEMPTED:
                    if e.new_status is RequestStatus.FINISHED_ABORTED:
                        continue  # dropped by vLLM's output processor
                    reason = RequestStatus.get_finished_reason(e.new_status)
                    assert reason is not None
                    self.success[reason] += 1
                    a, ts = added[rid], tokens[rid]
                    n = len(ts)
                    decode = (ts[-1] - ts[0]) / 1e9
                    self.observed["e2e"].append((e.ts_ns - a.ts_ns) / 1e9)
                    self.observed["queue"].append((first_run[rid] - a.ts_ns) / 1e9)
                    self.observed["prefill"].append((ts[0] - first_run[rid]) / 1e9)
                    self.observed["decode"].append(decode)
                    self.observed["inference"].append((ts[-1] - first_run[rid]) / 1e9)
                    self.observed["tpot"].append(decode / (n - 1) if n > 1 else 0.0)
                    self.observed["prompt_len"].append(a.num_prompt_tokens)
                    self.observed["generated"].append(n)
                    self.observed["max_tokens"].append(a.max_tokens)
                    self.observed["kv_computed"].append(a.num_prompt_tokens - cached[rid])
        self.observed["iteration"] = [float(v) for _, v in sorted(per_step.items())]
        steps = [e for e in events if isinstance(e, StepFinished)]
        self.running = steps[-1].num_running if steps else 0
        self.waiting = steps[-1].num_waiting if steps else 0


HISTOGRAMS = {
    "ttft": "vllm:time_to_first_token_seconds",
    "itl": "vllm:inter_token_latency_seconds",
    "tpot": "vllm:request_time_per_output_token_seconds",
    "e2e": "vllm:e2e_request_latency_seconds",
    "queue": "vllm:request_queue_time_seconds",
    "prefill": "vllm:request_prefill_time_seconds",
    "decode": "vllm:request_decode_time_seconds",
    "inference": "vllm:request_inference_time_seconds",
    "prompt_len": "vllm:request_prompt_tokens",
    "generated": "vllm:request_generation_tokens",
    "max_tokens": "vllm:request_params_max_tokens",
    "kv_computed": "vllm:request_prefill_kv_computed_tokens",
    "iteration": "vllm:iteration_tokens_total",
}


def assert_projection_matches(events: list[Event]) -> None:
    registry = CollectorRegistry()
    project_metrics(events, registry)
    s = _samples(registry)
    engine = next(e for e in events if isinstance(e, EngineConfigured)).engine_id
    x = Expected(events)

    def get(name: str, **labels: str) -> float:
        return _get(s, name, engine, **labels)

    assert get("vllm:generation_tokens_total") == x.counters["generation"]
    assert get("vllm:prompt_tokens_total") == x.counters["prompt"]
    assert get("vllm:prompt_tokens_cached_total") == x.counters["cached"]
    assert (
        get("vllm:prompt_tokens_by_source_total", source="local_cache_hit") == x.counters["cached"]
    )
    assert (
        get("vllm:prompt_tokens_by_source_total", source="local_compute")
        == x.counters["prompt"] - x.counters["cached"]
    )
    assert get("vllm:prompt_tokens_by_source_total", source="external_kv_transfer") == 0
    assert get("vllm:num_preemptions_total") == x.counters["preemptions"]
    for reason in ("stop", "length", "abort", "error", "repetition"):
        assert get("vllm:request_success_total", finished_reason=reason) == x.success[reason]
    for key, name in HISTOGRAMS.items():
        values = x.observed[key]
        assert get(f"{name}_count") == len(values), name
        assert get(f"{name}_sum") == pytest.approx(sum(values)), name
    finished = len(x.observed["e2e"])
    assert get("vllm:request_params_n_count") == finished
    assert get("vllm:request_max_num_generation_tokens_sum") == sum(x.observed["generated"])
    assert get("vllm:num_requests_running") == x.running
    assert get("vllm:num_requests_waiting") == x.waiting
    assert get("vllm:num_requests_waiting_by_reason", reason="capacity") == x.waiting
    assert get("vllm:num_requests_waiting_by_reason", reason="deferred") == 0


def test_every_metric_agrees_with_the_events(demo_events: list[Event]) -> None:
    assert Expected(demo_events).counters["preemptions"] > 0
    assert_projection_matches(demo_events)


@settings(max_examples=25)
@given(scenario=scenarios())
def test_every_metric_agrees_with_the_events_of_any_workload(scenario: Scenario) -> None:
    assert_projection_matches(run_scenario_logged(scenario))


def test_aborts_are_counted_as_vllm_counts_them() -> None:
    workload = Workload(
        {"max_num_seqs": 2},
        [
            WorkloadRequest("kept", [5] * 4, SamplingParams(max_tokens=6, ignore_eos=True)),
            WorkloadRequest(
                "aborted", [6] * 4, SamplingParams(max_tokens=6, ignore_eos=True), abort=3
            ),
        ],
    )
    registry = CollectorRegistry()
    project_metrics(run_workload_logged(workload), registry)
    s = _samples(registry)
    # vLLM's output processor forgets a client's abort: no success, no per-request histograms...
    assert _get(s, "vllm:request_success_total", finished_reason="abort") == 0
    assert _get(s, "vllm:request_success_total", finished_reason="length") == 1
    assert _get(s, "vllm:e2e_request_latency_seconds_count") == 1
    # ...but the tokens it was given before the abort were counted as they came.
    assert _get(s, "vllm:generation_tokens_total") == 6 + 3
    assert _get(s, "vllm:time_to_first_token_seconds_count") == 2


def test_gauges_follow_the_last_step(demo_events: list[Event]) -> None:
    half = demo_events[: len(demo_events) // 2]
    registry = CollectorRegistry()
    project_metrics(half, registry)
    last = [e for e in half if isinstance(e, StepFinished)][-1]
    config = next(e for e in demo_events if isinstance(e, EngineConfigured))
    s = _samples(registry)
    usage = last.num_used_blocks / (config.num_gpu_blocks - 1)
    assert _get(s, "vllm:kv_cache_usage_perc") == pytest.approx(usage)
    assert _get(s, "vllm:num_requests_running") == last.num_running


def test_custom_buckets_spread_the_fake_clock(demo_events: list[Event]) -> None:
    registry = CollectorRegistry()
    projection = PrometheusProjection(registry, latency_buckets=(1e-4, 1e-3, 1e-2))
    projection.feed_all(demo_events)
    s = _samples(registry)
    e2e = Expected(demo_events).observed["e2e"]
    for le in (1e-4, 1e-3, 1e-2):
        expected = sum(1 for v in e2e if v <= le)
        assert _get(s, "vllm:e2e_request_latency_seconds_bucket", le=str(le)) == expected


def test_live_subscription_equals_replaying_the_log(demo_events: list[Event]) -> None:
    from lifecycle_trace.cli._demo import demo_workload

    live = CollectorRegistry()
    log = EventLog()

    def attach(engine: LLMEngine) -> None:
        engine.bus.subscribe(log)
        attach_prometheus(engine, live, model_name="demo")

    for _ in run_workload(demo_workload(), on_engine=attach, clock=FakeClock()):
        pass
    replayed = CollectorRegistry()
    project_metrics(log, replayed, model_name="demo")
    assert _samples(live) == _samples(replayed)
    assert all(dict(labels)["model_name"] == "demo" for _, labels in _samples(live))


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
