"""Fixtures for the exporter tests."""

from __future__ import annotations

import pytest
from export_support import run_workload_logged

from lifecycle_trace._demo import demo_workload
from minivllm.events import Event


@pytest.fixture(scope="session")
def demo_events() -> list[Event]:
    """The CLI demo's workload (chunked prefill, a preemption, an abort) as events."""
    return run_workload_logged(demo_workload())
