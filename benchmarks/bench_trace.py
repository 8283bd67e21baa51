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
from typing import IO
from typing import Any

import attrs
import orjson
import structlog

from lifecycle_trace.check import check
from lifecycle_trace.fold.timeline import build_timelines
from lifecycle_trace.log import EventLog
from lifecycle_trace.log import read_jsonl
from lifecycle_trace.log import replay
from lifecycle_trace.log import write_jsonl
from lifecycle_trace.logging import EVENT_LOGGER_NAME
from lifecycle_trace.logging import ApplicationJsonLogger
from lifecycle_trace.logging import make_json_logger
from minivllm.engine.llm_engine import LLMEngine
from minivllm.events import Event
from minivllm.events import event_to_dict
from minivllm.model_executor.dummy import DummyModelRunner
from minivllm.sampling_params import SamplingParams
from minivllm.workload import Workload
from minivllm.workload import WorkloadRequest
from minivllm.workload import WorkloadRun

TRACE_ENGINE = {
    "max_num_seqs": 64,
    "max_num_batched_tokens": 512,
    "num_gpu_blocks": 400,
    "block_size": 16,
    "max_model_len": 1024,
}


def trace_workload(num_requests: int) -> Workload:
    """A busy workload: mixed prompt and output lengths, chunked prefill, some preemption."""
    rng = random.Random(0)
    requests = [
        WorkloadRequest(
            str(i),
            [rng.randrange(256)] * rng.randint(8, 400),
            SamplingParams(max_tokens=rng.randint(8, 200), ignore_eos=True),
        )
        for i in range(num_requests)
    ]
    return Workload(TRACE_ENGINE, requests)


def run_trace_workload(num_requests: int, observers: tuple[Any, ...] = ()) -> LLMEngine:
    """Run the workload to the end through the workload driver; return the engine."""
    workload = trace_workload(num_requests)
    engine = LLMEngine(DummyModelRunner(), **workload.engine_kwargs, observers=observers)
    for _ in WorkloadRun(engine, workload):
        pass
    return engine


def best_of(fn: Callable[[], Any], repeat: int = 5) -> float:
    """Least CPU time of ``repeat`` calls, in seconds (other work on the machine does not count)."""
    best = float("inf")
    for _ in range(repeat):
        gc.collect()
        t0 = time.process_time()
        fn()
        best = min(best, time.process_time() - t0)
    return best


def _timed_once(fn: Callable[[], None]) -> float:
    gc.collect()
    t0 = time.process_time()
    fn()
    return time.process_time() - t0


def recorded_events(num_requests: int) -> list[Event]:
    """The events of one run of the workload, recorded in memory."""
    log = EventLog()
    run_trace_workload(num_requests, (log,))
    return list(log)


def bytes_per_event(num_requests: int) -> float:
    """Memory kept per recorded event (a run of its own: tracing slows everything down)."""
    gc.collect()
    tracemalloc.start()
    log = EventLog()
    before = tracemalloc.get_traced_memory()[0]
    engine = run_trace_workload(num_requests, (log,))
    del engine
    gc.collect()
    per_event = (tracemalloc.get_traced_memory()[0] - before) / len(log)
    tracemalloc.stop()
    return per_event


def run_times(num_requests: int, repeat: int = 3) -> tuple[float, float]:
    """Seconds for the workload with a recorder attached and with none (best of ``repeat``)."""

    def recorded() -> None:
        run_trace_workload(num_requests, (EventLog(),))

    with_log = min(_timed_once(recorded) for _ in range(repeat))
    bare = min(_timed_once(lambda: run_trace_workload(num_requests)) for _ in range(repeat))
    return with_log, bare


def rebuild_rate(events: list[Event], repeat: int = 5) -> float:
    """Events per second folded into timelines from memory."""
    return len(events) / best_of(lambda: build_timelines(events), repeat)


def check_rate(events: list[Event], repeat: int = 5) -> float:
    """Events per second through the checker, every rule on, from memory."""
    return len(events) / best_of(lambda: check(events), repeat)


@attrs.frozen
class JsonlRates:
    """Events per second through the store, and orjson alone on the same data for scale."""

    write: float
    read: float
    read_rebuild: float
    replay: float
    raw_write: float
    raw_read: float
    simple_write: float
    simple_read: float


def _orjson_write(path: Path, dicts: list[dict[str, Any]]) -> None:
    with open(path, "wb", buffering=1 << 20) as f:
        for d in dicts:
            f.write(orjson.dumps(d, option=orjson.OPT_APPEND_NEWLINE))


def jsonl_rates(events: list[Event], repeat: int = 5) -> JsonlRates:
    """Write, read, read + rebuild and streaming replay rates of one log, with baselines."""
    n = len(events)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "log.jsonl"
        write = best_of(lambda: write_jsonl(events, path), repeat)
        dicts = [event_to_dict(e) for e in events]
        raw_path = Path(tmp) / "raw.jsonl"
        raw_write = best_of(lambda: _orjson_write(raw_path, dicts), repeat)
        read_rebuild = best_of(lambda: build_timelines(read_jsonl(path).events), repeat)
        streamed = best_of(lambda: replay(path), repeat)
        read_only = best_of(lambda: read_jsonl(path), repeat)
        raw_read = best_of(
            lambda: [orjson.loads(x) for x in path.read_bytes().splitlines()], repeat
        )
        # Calibration: orjson alone on simple one-key lines, the machine's baseline.
        simple = [{"i": i} for i in range(n)]
        simple_path = Path(tmp) / "simple.jsonl"
        simple_write = best_of(lambda: _orjson_write(simple_path, simple), repeat)
        simple_read = best_of(
            lambda: [orjson.loads(x) for x in simple_path.read_bytes().splitlines()], repeat
        )
    return JsonlRates(
        write=n / write,
        read=n / read_only,
        read_rebuild=n / read_rebuild,
        replay=n / streamed,
        raw_write=n / raw_write,
        raw_read=n / raw_read,
        simple_write=n / simple_write,
        simple_read=n / simple_read,
    )


@attrs.frozen
class LoggingCosts:
    """Seconds per event of structlog JSON logging, three ways."""

    direct: float
    stdlib: float
    minimal: float


def stdlib_json_logger(stream: IO[str]) -> ApplicationJsonLogger:
    """The ``json-log`` observer through stdlib logging (a handler on ``stream``)."""
    stdlib_logger = logging.getLogger(EVENT_LOGGER_NAME)
    stdlib_logger.propagate = False
    stdlib_logger.setLevel(logging.DEBUG)  # the application asks for every event
    for old in list(stdlib_logger.handlers):
        stdlib_logger.removeHandler(old)
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(message)s"))
    stdlib_logger.addHandler(handler)
    observer = make_json_logger(level="DEBUG")
    assert isinstance(observer, ApplicationJsonLogger)
    return observer


def _feed(handler: Callable[[Event], None], events: list[Event]) -> None:
    for e in events:
        handler(e)


def logging_costs(events: list[Event], repeat: int = 5) -> LoggingCosts:
    """structlog JSON logging per event: direct stream, via stdlib logging, minimal structlog."""
    sample = events[: min(len(events), 100_000)]
    m = len(sample)
    with open(os.devnull, "wb") as devnull, open(os.devnull, "w") as devnull_text:
        fast_logger = make_json_logger(devnull)
        direct = best_of(lambda: _feed(fast_logger, sample), repeat)
        via_stdlib = stdlib_json_logger(devnull_text)
        stdlib = best_of(lambda: _feed(via_stdlib, sample), repeat)
        minimal_logger = structlog.wrap_logger(
            structlog.BytesLogger(devnull),
            processors=[structlog.processors.JSONRenderer(serializer=orjson.dumps)],
            wrapper_class=structlog.make_filtering_bound_logger(logging.DEBUG),
            cache_logger_on_first_use=True,
        )
        minimal = best_of(
            lambda: [minimal_logger.debug("e", seq=e.seq, step=e.step) for e in sample], repeat
        )
    return LoggingCosts(direct / m, stdlib / m, minimal / m)


def main() -> None:
    """Measure and print the table."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=1000)
    args = parser.parse_args()

    per_event = bytes_per_event(args.requests)
    run_with_log, run_bare = run_times(args.requests)
    events = recorded_events(args.requests)
    n = len(events)
    rebuild = rebuild_rate(events)
    io = jsonl_rates(events)
    costs = logging_costs(events)

    rows = [
        ("events in the log", f"{n:,}", "", ""),
        (
            "engine run, recorder attached vs none",
            f"{run_with_log:.2f} s vs {run_bare:.2f} s",
            "",
            f"{run_with_log / run_bare:.2f}x the time",
        ),
        ("rebuild timelines from memory", f"{rebuild / 1e6:.2f} M events/s", ">= 1 M/s", ""),
        (
            "write JSON Lines",
            f"{io.write / 1e6:.2f} M events/s",
            ">= 1 M/s",
            f"{io.write / io.raw_write:.2f}x the speed of orjson on ready dicts",
        ),
        (
            "read JSON Lines (typed events)",
            f"{io.read / 1e6:.2f} M events/s",
            "",
            f"{io.read / io.raw_read:.2f}x the speed of bare orjson.loads",
        ),
        ("read + rebuild", f"{io.read_rebuild / 1e6:.2f} M events/s", ">= 0.5 M/s", ""),
        ("replay (streaming read + rebuild)", f"{io.replay / 1e6:.2f} M events/s", "", ""),
        (
            "structlog JSON log, direct stream",
            f"{costs.direct * 1e6:.2f} us/event",
            "<= 7 us",
            f"{costs.direct / costs.minimal:.2f}x the cost of minimal structlog",
        ),
        (
            "structlog JSON log, via stdlib logging",
            f"{costs.stdlib * 1e6:.2f} us/event",
            "",
            f"{costs.stdlib / costs.minimal:.2f}x the cost of minimal structlog",
        ),
        ("minimal structlog (2 keys, orjson)", f"{costs.minimal * 1e6:.2f} us/event", "", ""),
        (
            "calibration: orjson alone, one-key lines",
            f"write {io.simple_write / 1e6:.2f} M/s, read {io.simple_read / 1e6:.2f} M/s",
            "",
            "",
        ),
        ("memory per recorded event", f"{per_event:.0f} bytes", "<= 200 bytes", ""),
    ]
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    header = ("measure", "value", "target", "side by side")
    widths = [max(w, len(h)) for w, h in zip(widths, header, strict=True)]
    for row in (header, tuple("-" * w for w in widths), *rows):
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())


if __name__ == "__main__":
    main()
