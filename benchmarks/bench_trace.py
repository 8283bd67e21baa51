"""Speed and memory of lifecycle_trace on one recorded run, with baselines measured alongside.

Run: ``python benchmarks/bench_trace.py [--requests N]``. Prints one table:
each measure, its value, the target it is held to, and where a baseline makes
sense, the ratio to that baseline measured in the same run on the same events.
Each timing is the best of five. On a busy machine absolute figures swing; the
calibration row (orjson alone on one-key lines) tells how fast this machine is
right now, and the side-by-side ratios are the figures to compare.
"""

from __future__ import annotations

import argparse
import gc
import logging
import os
import random
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import structlog

from lifecycle_trace.eventlog import EventLog
from lifecycle_trace.logging import JsonLogObserver, json_processors, make_json_logger
from lifecycle_trace.store import read_jsonl, write_jsonl
from lifecycle_trace.timeline import build_timelines
from minivllm.engine.llm_engine import LLMEngine
from minivllm.events import event_to_dict
from minivllm.sampling_params import SamplingParams


def workload_engine(num_requests: int, observers: tuple[Any, ...] = ()) -> LLMEngine:
    """A busy engine: mixed prompt and output lengths, chunked prefill, some preemption."""
    rng = random.Random(0)
    engine = LLMEngine(
        max_num_seqs=64,
        max_num_batched_tokens=512,
        num_gpu_blocks=400,
        block_size=16,
        max_model_len=1024,
        observers=observers,
    )
    for i in range(num_requests):
        prompt = [rng.randrange(256)] * rng.randint(8, 400)
        engine.add_request(
            prompt, SamplingParams(max_tokens=rng.randint(8, 200), ignore_eos=True), str(i)
        )
    return engine


def drain(engine: LLMEngine) -> None:
    """Step until every request finished."""
    while engine.has_unfinished_requests():
        engine.step()


def best_of(fn: Callable[[], Any], repeat: int = 5) -> float:
    """Fastest wall time of ``repeat`` calls, in seconds."""
    best = float("inf")
    for _ in range(repeat):
        gc.collect()
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def _timed_once(fn: Callable[[], None]) -> float:
    gc.collect()
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main() -> None:
    """Measure and print the table."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=1000)
    args = parser.parse_args()

    # Memory kept per recorded event (a run of its own: tracing slows everything down).
    gc.collect()
    tracemalloc.start()
    log = EventLog()
    before = tracemalloc.get_traced_memory()[0]
    engine = workload_engine(args.requests, (log,))
    drain(engine)
    del engine
    gc.collect()
    bytes_per_event = (tracemalloc.get_traced_memory()[0] - before) / len(log)
    tracemalloc.stop()
    del log
    gc.collect()

    # The engine with and without a recorder (best of three fresh runs each).
    logs: list[EventLog] = []

    def run_recorded() -> None:
        logs[:] = [EventLog()]
        drain(workload_engine(args.requests, (logs[-1],)))

    def timed(make: Callable[[], None]) -> float:
        return min(_timed_once(make) for _ in range(3))

    run_with_log = timed(run_recorded)
    run_bare = timed(lambda: drain(workload_engine(args.requests)))
    log = logs[0]
    n = len(log)

    events = list(log)
    rebuild = best_of(lambda: build_timelines(events))

    tmp = Path(tempfile.mkdtemp())
    path = tmp / "log.jsonl"
    write = best_of(lambda: write_jsonl(events, path))
    dicts = [event_to_dict(e) for e in events]
    raw_path = tmp / "raw.jsonl"

    def raw_write_fn() -> None:
        with open(raw_path, "wb", buffering=1 << 20) as f:
            for d in dicts:
                f.write(orjson.dumps(d, option=orjson.OPT_APPEND_NEWLINE))

    raw_write = best_of(raw_write_fn)
    read_rebuild = best_of(lambda: build_timelines(read_jsonl(path).events))
    read_only = best_of(lambda: read_jsonl(path))
    raw_read = best_of(lambda: [orjson.loads(x) for x in path.read_bytes().splitlines()])

    # Calibration: orjson alone on simple one-key lines, the machine's baseline.
    simple = [{"i": i} for i in range(n)]
    simple_path = tmp / "simple.jsonl"

    def simple_write_fn() -> None:
        with open(simple_path, "wb", buffering=1 << 20) as f:
            for d in simple:
                f.write(orjson.dumps(d, option=orjson.OPT_APPEND_NEWLINE))

    simple_write = best_of(simple_write_fn)
    simple_read = best_of(lambda: [orjson.loads(x) for x in simple_path.read_bytes().splitlines()])

    sample = events[: min(n, 100_000)]
    devnull = open(os.devnull, "wb")  # noqa: SIM115 - closed at the end
    fast_logger = make_json_logger(devnull)
    log_fast = best_of(lambda: [fast_logger(e) for e in sample])
    stdlib_logger = logging.getLogger("bench.events")
    stdlib_logger.propagate = False
    stdlib_logger.setLevel(logging.DEBUG)
    handler = logging.StreamHandler(open(os.devnull, "w"))  # noqa: SIM115
    handler.setFormatter(logging.Formatter("%(message)s"))
    stdlib_logger.addHandler(handler)
    via_stdlib = JsonLogObserver(
        structlog.wrap_logger(
            stdlib_logger,
            processors=json_processors(),
            wrapper_class=structlog.make_filtering_bound_logger(logging.DEBUG),
        )
    )
    log_stdlib = best_of(lambda: [via_stdlib(e) for e in sample])
    minimal = structlog.wrap_logger(
        structlog.BytesLogger(devnull),
        processors=[structlog.processors.JSONRenderer(serializer=orjson.dumps)],
        wrapper_class=structlog.make_filtering_bound_logger(logging.DEBUG),
        cache_logger_on_first_use=True,
    )
    log_minimal = best_of(lambda: [minimal.debug("e", seq=e.seq, step=e.step) for e in sample])
    devnull.close()
    handler.stream.close()
    for p in (path, raw_path, simple_path):
        os.unlink(p)
    tmp.rmdir()

    m = len(sample)
    rows = [
        ("events in the log", f"{n:,}", "", ""),
        (
            "engine run, recorder attached vs none",
            f"{run_with_log:.2f} s vs {run_bare:.2f} s",
            "",
            f"{run_with_log / run_bare:.2f}x the time",
        ),
        ("rebuild timelines from memory", f"{n / rebuild / 1e6:.2f} M events/s", ">= 1 M/s", ""),
        (
            "write JSON Lines",
            f"{n / write / 1e6:.2f} M events/s",
            ">= 1 M/s",
            f"{raw_write / write:.2f}x the speed of orjson on ready dicts",
        ),
        (
            "read JSON Lines (typed events)",
            f"{n / read_only / 1e6:.2f} M events/s",
            "",
            f"{raw_read / read_only:.2f}x the speed of bare orjson.loads",
        ),
        ("read + rebuild", f"{n / read_rebuild / 1e6:.2f} M events/s", ">= 0.5 M/s", ""),
        (
            "structlog JSON log, direct stream",
            f"{log_fast / m * 1e6:.2f} us/event",
            "<= 7 us",
            f"{log_fast / log_minimal:.2f}x the cost of minimal structlog",
        ),
        (
            "structlog JSON log, via stdlib logging",
            f"{log_stdlib / m * 1e6:.2f} us/event",
            "",
            f"{log_stdlib / log_minimal:.2f}x the cost of minimal structlog",
        ),
        ("minimal structlog (2 keys, orjson)", f"{log_minimal / m * 1e6:.2f} us/event", "", ""),
        (
            "calibration: orjson alone, one-key lines",
            f"write {n / simple_write / 1e6:.2f} M/s, read {n / simple_read / 1e6:.2f} M/s",
            "",
            "",
        ),
        ("memory per recorded event", f"{bytes_per_event:.0f} bytes", "<= 200 bytes", ""),
    ]
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    header = ("measure", "value", "target", "side by side")
    widths = [max(w, len(h)) for w, h in zip(widths, header, strict=True)]
    for row in (header, tuple("-" * w for w in widths), *rows):
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())


if __name__ == "__main__":
    main()
