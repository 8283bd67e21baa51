"""Exporting a long log: what the exporters hold does not grow with the requests that finished."""

from __future__ import annotations

import contextlib
import gc
import io
import os
import tracemalloc
from collections.abc import Callable
from collections.abc import Iterable
from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers.scale import run_rolling
from helpers.scale import write_rolling
from lifecycle_trace import EventLog
from lifecycle_trace.cli import main
from lifecycle_trace.export.chrome import ChromeTraceStream
from lifecycle_trace.export.chrome import write_chrome_trace
from lifecycle_trace.fold.finished import finished_requests
from minivllm.events import Event
from minivllm.events import StepFinished

SMALL, LARGE = 1_000, 5_000


def _events(num_requests: int) -> list[Event]:
    log = EventLog()
    # Same-shaped requests, so the live state is the same however long the run.
    run_rolling(num_requests, (log,), uniform=True)
    return list(log)


@pytest.fixture(scope="module")
def runs() -> dict[int, list[Event]]:
    """The events of a warm-up, a small and a large run, made once for the module."""
    return {n: _events(n) for n in (100, SMALL, LARGE)}


@pytest.fixture(scope="module")
def logs(tmp_path_factory: pytest.TempPathFactory) -> dict[int, Path]:
    """Stored logs of a small and a large run."""
    tmp = tmp_path_factory.mktemp("logs")
    return {n: write_rolling(tmp / f"{n}.jsonl", n, uniform=True) for n in (SMALL, LARGE)}


def _most_held(events: list[Event], consume: Callable[[Iterable[Event]], object]) -> int:
    """The most memory allocated since the start and still held at any step's end, in bytes."""
    most = 0

    def watched() -> Iterator[Event]:
        nonlocal most
        for e in events:
            if type(e) is StepFinished:
                # A running maximum, not a list of samples: the samples would grow with the log.
                most = max(most, tracemalloc.get_traced_memory()[0])
            yield e

    source = watched()
    gc.collect()
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        consume(source)
    finally:
        tracemalloc.stop()
    return most - base


def _drain(items: Iterable[object]) -> None:
    for _ in items:
        pass


def _to_null(events: Iterable[Event]) -> None:
    with open(os.devnull, "w", encoding="utf-8") as out:
        write_chrome_trace(events, out)


@pytest.mark.parametrize(
    "consume",
    [
        pytest.param(lambda events: _drain(ChromeTraceStream(events)), id="chrome-fold"),
        pytest.param(lambda events: _drain(finished_requests(events)), id="finished-requests"),
    ],
)
def test_the_export_folds_hold_only_live_requests(
    consume: Callable[[Iterable[Event]], object], runs: dict[int, list[Event]]
) -> None:
    _most_held(runs[100], consume)  # first-use caches, not per-request state
    small = _most_held(runs[SMALL], consume)
    large = _most_held(runs[LARGE], consume)
    # 4,000 more finished requests: even 2 bytes kept for each would exceed the margin.
    assert large < small + 8_000, (small, large)


def test_writing_the_chrome_trace_holds_a_bounded_batch(runs: dict[int, list[Event]]) -> None:
    _most_held(runs[100], _to_null)
    small = _most_held(runs[SMALL], _to_null)
    large = _most_held(runs[LARGE], _to_null)
    # The margin covers how full the batch of unwritten trace events happens to be
    # at a step's end; 8 bytes kept per finished request would exceed it.
    assert large < small + 24_000, (small, large)


def _export_peak(log: Path, fmt: str, out: str = os.devnull, *options: str) -> int:
    """The peak memory of ``export`` of ``log`` as ``fmt`` into ``out``, above where it began."""
    gc.collect()
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        with contextlib.redirect_stdout(io.StringIO()):
            assert main(["export", str(log), "--format", fmt, "-o", out, *options]) == 0
        return tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize(
    ("fmt", "module"),
    [("chrome", None), ("prometheus", "prometheus_client")],
)
def test_the_export_command_reads_a_5x_longer_log_in_the_same_memory(
    fmt: str, module: str | None, logs: dict[int, Path]
) -> None:
    if module is not None:
        pytest.importorskip(module, reason=f"the '{fmt}' extra is not installed")
    _export_peak(logs[SMALL], fmt)  # first-use caches
    small = _export_peak(logs[SMALL], fmt)
    large = _export_peak(logs[LARGE], fmt)
    # The large log's events alone would take megabytes. The margin covers the
    # JSON decoder's cache of object keys (request ids among them), which fills
    # up to its fixed size over the first few thousand requests.
    assert large < small + 256_000, (small, large)


def _parquet_peak(log: Path, out: Path) -> int:
    return _export_peak(log, "parquet", str(out), "--row-group-size", "500")


def test_the_parquet_export_reads_a_5x_longer_log_in_the_same_memory(
    logs: dict[int, Path], tmp_path: Path
) -> None:
    pytest.importorskip("pyarrow.parquet", reason="the 'parquet' extra is not installed")
    _parquet_peak(logs[SMALL], tmp_path / "warm-up")
    small = _parquet_peak(logs[SMALL], tmp_path / "small")
    large = _parquet_peak(logs[LARGE], tmp_path / "large")
    # Rows are held a row group at a time (500 of each table, which both logs
    # fill); the rest of the margin is the JSON decoder's key cache, as for the
    # other formats.
    assert large < small + 256_000, (small, large)
