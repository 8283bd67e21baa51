"""Fixtures for the exporter tests."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest
from export_support import run_workload_logged

from lifecycle_trace._demo import demo_workload
from minivllm.events import Event


@pytest.fixture(scope="session")
def demo_events() -> list[Event]:
    """The CLI demo's workload (chunked prefill, a preemption, an abort) as events."""
    return run_workload_logged(demo_workload())


CHROMIUM = "/usr/bin/chromium"


def _install_chromium() -> str | None:
    """Install Debian's chromium package; return why it could not be, or None."""
    if os.geteuid() != 0:
        return "chromium is missing and the tests are not running as root to install it"
    if shutil.which("apt-get") is None:
        return "chromium is missing and there is no apt-get to install it"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for argv in (["apt-get", "update"], ["apt-get", "install", "-y", "chromium"]):
        try:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=900, env=env)
        except subprocess.TimeoutExpired:
            return f"'{' '.join(argv)}' timed out"
        if done.returncode != 0:
            return f"'{' '.join(argv)}' failed: {done.stderr.strip()[-300:]}"
    return None if os.access(CHROMIUM, os.X_OK) else "chromium installed, but not at " + CHROMIUM


@pytest.fixture(scope="session")
def chromium() -> str:
    """The headless Chromium binary, installed once per session where missing and possible."""
    if not os.access(CHROMIUM, os.X_OK):
        reason = _install_chromium()
        if reason is not None:
            pytest.skip(f"cannot render in Chromium: {reason}")
    return CHROMIUM
