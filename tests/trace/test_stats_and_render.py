"""Latency summaries and the plain-text pictures."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from helpers.trace import reference
from helpers.trace import run_logged
from lifecycle_trace.cli._render import LEGEND
from lifecycle_trace.cli._render import status_chart
from lifecycle_trace.cli._render import timeline_table
from lifecycle_trace.fold.stats import summarize
from lifecycle_trace.fold.stats import summarize_timelines
from lifecycle_trace.fold.timeline import build_timelines


def test_percentiles_interpolate_as_numpy_does() -> None:
    s = summarize("x", [float(v) for v in range(100, 0, -1)])  # 1..100, unsorted
    # numpy.percentile's default (linear): rank q * (n - 1) between the two closest values.
    assert s is not None and (s.count, s.mean, s.max) == (100, 50.5, 100.0)
    assert (s.p50, s.p90, s.p99) == pytest.approx((50.5, 90.1, 99.01))
    two = summarize("x", [3.0, 1.0])
    assert two is not None and (two.p50, two.p90, two.p99) == pytest.approx((2.0, 2.8, 2.98))
    assert summarize("x", []) is None


@given(st.lists(st.floats(0, 1e9), min_size=1, max_size=200))
def test_percentiles_are_numpys(values: list[float]) -> None:
    s = summarize("x", values)
    assert s is not None
    assert (s.p50, s.p90, s.p99) == tuple(np.percentile(values, (50, 90, 99)))


@given(st.lists(st.floats(0, 1e9), min_size=1, max_size=50))
def test_summary_is_ordered_and_bounded(values: list[float]) -> None:
    s = summarize("x", values)
    assert s is not None and s.count == len(values)
    assert min(values) <= s.p50 <= s.p90 <= s.p99 <= s.max == max(values)
    assert min(values) <= s.mean * (1 + 1e-12) and s.mean <= max(values) * (1 + 1e-12)


def test_summaries_cover_finished_requests() -> None:
    timelines = build_timelines(run_logged(reference("d"))[0])
    summaries = summarize_timelines(timelines.values())
    assert set(summaries) == {"queue", "ttft", "tpot", "e2e"}
    e2e, ttft = summaries["e2e"], summaries["ttft"]
    assert e2e is not None and ttft is not None
    assert e2e.count == ttft.count == 8
    assert ttft.max <= e2e.max
    tpot = summaries["tpot"]
    # tpot needs two output tokens; every request of run d makes at least two
    assert tpot is not None and tpot.count == 8


def test_chart_has_one_letter_per_step_and_wraps() -> None:
    timelines = build_timelines(run_logged(reference("c"))[0])  # 71 steps
    chart = status_chart(timelines, width=30)
    blocks = chart.split("\n\n")
    assert blocks[-1] == LEGEND
    assert len(blocks) == 1 + 3  # steps 0-29, 30-59, 60-70
    rows = {}
    for block in blocks[:-1]:
        for line in block.splitlines()[2:]:
            rid, cells = line.split()
            rows[rid] = rows.get(rid, "") + cells
    assert rows["r0"] == "R" * 39 + "L" + "." * 31
    assert rows["r1"] == "R" * 9 + "P" * 31 + "R" * 30 + "L"


def test_table_has_a_row_per_request() -> None:
    timelines = build_timelines(run_logged(reference("b"))[0])
    lines = timeline_table(timelines).splitlines()
    assert len(lines) == 2 + 1
    cells = lines[2].split()
    assert cells[:8] == ["r0", "600", "3", "0", "0", "2", "256+256+88", "4"]
