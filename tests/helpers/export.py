"""Helpers for the exporter tests: traced runs on a deterministic clock."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from lifecycle_trace.eventlog import EventLog
from lifecycle_trace.testing import FakeClock
from lifecycle_trace.testing import Scenario
from lifecycle_trace.testing import run_scenario
from minivllm.engine.llm_engine import LLMEngine
from minivllm.events import Event
from minivllm.workload import Workload
from minivllm.workload import run_workload


def run_workload_logged(workload: Workload) -> list[Event]:
    """Run ``workload`` to the end on a 1 µs-per-reading clock; return its events."""
    log = EventLog()

    def attach(engine: LLMEngine) -> None:
        engine.bus.subscribe(log)

    for _ in run_workload(workload, on_engine=attach, clock=FakeClock()):
        pass
    return list(log)


def run_scenario_logged(scenario: Scenario) -> list[Event]:
    """Run a hypothesis scenario on a 1 µs-per-reading clock; return its events."""
    log = EventLog()
    run_scenario(scenario, [log], clock=FakeClock())
    return list(log)


def otlp_spans(path: Path) -> list[dict[str, Any]]:
    """Every span of an OTLP/JSON Lines file (``export --format otel -o``), in file order."""
    return [
        span
        for line in path.read_text().splitlines()
        for resource_spans in json.loads(line)["resourceSpans"]
        for scope_spans in resource_spans["scopeSpans"]
        for span in scope_spans["spans"]
    ]
