"""Logs for the robustness tests: a whole one, and one damaged half-way through."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers.export import run_workload_logged
from lifecycle_trace.cli._demo import demo_workload
from lifecycle_trace.log import write_jsonl


@pytest.fixture
def good_log(tmp_path: Path) -> Path:
    """The demo's log (five requests, a preemption, an abort), written whole."""
    path = tmp_path / "demo.jsonl"
    write_jsonl(run_workload_logged(demo_workload()), path)
    return path


@pytest.fixture
def damaged_log(good_log: Path, tmp_path: Path) -> Path:
    """The demo's log with a line of garbage half-way: a strict read fails after writing some."""
    lines = good_log.read_bytes().splitlines(keepends=True)
    path = tmp_path / "damaged.jsonl"
    half = len(lines) // 2
    path.write_bytes(
        b"".join([*lines[:half], b'{"type": "step_started", "seq": \n', *lines[half:]])
    )
    return path
