"""Fixtures for the exporter tests."""

from __future__ import annotations

import os
import shutil

import pytest

from helpers.export import run_workload_logged
from lifecycle_trace.cli._demo import demo_workload
from minivllm.events import Event


@pytest.fixture(scope="session")
def demo_events() -> list[Event]:
    """The CLI demo's workload (chunked prefill, a preemption, an abort) as events."""
    return run_workload_logged(demo_workload())


@pytest.fixture(scope="session")
def async_demo_events() -> list[Event]:
    """The CLI demo under async scheduling and the priority policy (``demo --async --policy
    priority``): batches in flight, priorities, a preemption by priority."""
    return run_workload_logged(demo_workload(async_scheduling=True, policy="priority"))


BROWSER_TESTS = "LIFECYCLE_TRACE_BROWSER_TESTS"
"""Set to 1 to render pictures in headless Chromium (never installed by the tests)."""


@pytest.fixture(scope="session")
def chromium() -> str:
    """The headless Chromium binary, when the browser tests are asked for and it is installed."""
    if os.environ.get(BROWSER_TESTS) != "1":
        pytest.skip(f"rendering in Chromium is opt-in: set {BROWSER_TESTS}=1")
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    if binary is None:
        pytest.skip(f"{BROWSER_TESTS}=1, but no chromium is on PATH (install it to run these)")
    return binary
