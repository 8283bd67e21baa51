"""Engine cost per request per decode step, with and without observers.

256 concurrent requests (prompt 128, max_tokens 128, block size 16, ample
blocks) with a runner that always samples one fixed token: after the
prefills, every step is 256 decodes, so the step time divided by 256 is the
engine's own cost per request per step. Run: ``python benchmarks/bench_engine.py``.

Times are CPU time of this process (``time.process_time``): on a machine
shared with other work, wall time also counts the other work.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import time
from collections.abc import Callable
from typing import Any

import attrs

from minivllm import DummyModelRunner
from minivllm import LLMEngine
from minivllm import SamplingParams
from minivllm.bus import EventBus
from minivllm.events import CounterUpdated
from minivllm.sampling_params import RequestOutputKind

NUM_REQUESTS = 256
PROMPT_LEN = 128
MAX_TOKENS = 128


def make_engine(
    observers: list[Callable[[Any], None]],
    output_kind: RequestOutputKind = RequestOutputKind.FINAL_ONLY,
    num_requests: int = NUM_REQUESTS,
    history: int = 0,
    attach: Callable[[LLMEngine], None] | None = None,
    async_scheduling: bool = False,
) -> LLMEngine:
    """An engine with ``num_requests`` requests past prefill, ready to decode.

    With ``history``, that many short requests have run to completion on it first.
    ``attach`` is called with the new engine before any request, to subscribe
    handlers to some event types only. ``async_scheduling`` runs the engine
    with vLLM's async scheduler and a batch queue of two.
    """
    engine = LLMEngine(
        DummyModelRunner(token_id=7),
        max_num_seqs=num_requests,
        max_num_batched_tokens=8192,
        block_size=16,
        num_gpu_blocks=num_requests * 17 + 1,
        max_model_len=1024,
        observers=observers,
        async_scheduling=async_scheduling,
    )
    if attach is not None:
        attach(engine)
    short = SamplingParams(max_tokens=2, output_kind=output_kind)
    for start in range(0, history, num_requests):
        for i in range(start, min(history, start + num_requests)):
            engine.add_request([i % 256] * 8, short)
        while engine.has_unfinished_requests():
            engine.step()
    params = SamplingParams(max_tokens=MAX_TOKENS, output_kind=output_kind)
    for i in range(num_requests):
        engine.add_request([(i + j) % 256 for j in range(PROMPT_LEN)], params)
    while (
        any(r.num_computed_tokens < r.num_prompt_tokens for r in engine.scheduler.requests.values())
        or engine.scheduler.waiting
    ):
        engine.step()
    return engine


def decode_sample_us(
    observers: list[Callable[[Any], None]],
    steps: int,
    output_kind: RequestOutputKind = RequestOutputKind.FINAL_ONLY,
    num_requests: int = NUM_REQUESTS,
    history: int = 0,
    attach: Callable[[LLMEngine], None] | None = None,
    async_scheduling: bool = False,
) -> float:
    """One measurement of decode step time / requests on a fresh engine, in microseconds."""
    engine = make_engine(
        observers, output_kind, num_requests, history, attach, async_scheduling=async_scheduling
    )
    gc.collect()
    t0 = time.process_time()
    for _ in range(steps):
        engine.step()
    elapsed = time.process_time() - t0
    return elapsed / (steps * num_requests) * 1e6


def decode_cost_us(
    observers_factory: Callable[[], list[Callable[[Any], None]]],
    steps: int,
    output_kind: RequestOutputKind = RequestOutputKind.FINAL_ONLY,
    async_scheduling: bool = False,
) -> float:
    """Median over repeats of (decode step time / requests), in microseconds."""
    samples = [
        decode_sample_us(observers_factory(), steps, output_kind, async_scheduling=async_scheduling)
        for _ in range(5)
    ]
    return statistics.median(samples)


def event_cost_ns(n: int = 200_000) -> float:
    """Create + dispatch one CounterUpdated event to one list-appending subscriber."""
    bus = EventBus(clock=time.monotonic_ns)
    sink: list[object] = []
    bus.subscribe(sink.append)
    emit = bus.channel(CounterUpdated).emit
    best = float("inf")
    for _ in range(5):
        sink.clear()
        t0 = time.process_time()
        for i in range(n):
            emit("r", "num_tokens", i, i + 1)
        best = min(best, (time.process_time() - t0) / n * 1e9)
    return best


@attrs.frozen
class _FiveFields:
    a: int
    b: int
    c: int
    d: int
    e: int


@attrs.frozen
class Scale:
    """For scale, in the same run, ns per object: attrs.frozen objects of five fields."""

    frozen: float  # built and dropped
    frozen_kept: float  # built and appended to a list, as a recording subscriber keeps events
    loop: float  # a plain loop calling one handler


def scale_ns(n: int = 200_000) -> Scale:
    """attrs.frozen objects of five fields, dropped and kept; a plain handler loop."""
    frozen = kept = loop = float("inf")
    handlers: list[Callable[[int], None]] = [lambda event: None]
    for _ in range(5):
        t0 = time.process_time()
        for i in range(n):
            _FiveFields(i, 1, 2, 3, 4)
        frozen = min(frozen, (time.process_time() - t0) / n * 1e9)
        sink: list[_FiveFields] = []
        keep = sink.append
        t0 = time.process_time()
        for i in range(n):
            keep(_FiveFields(i, 1, 2, 3, 4))
        kept = min(kept, (time.process_time() - t0) / n * 1e9)
        del sink
        t0 = time.process_time()
        for i in range(n):
            for handler in handlers:
                handler(i)
        loop = min(loop, (time.process_time() - t0) / n * 1e9)
    return Scale(frozen, kept, loop)


def main() -> None:
    """Print the table."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=60, help="decode steps timed per repeat")
    args = parser.parse_args()
    final, delta = RequestOutputKind.FINAL_ONLY, RequestOutputKind.DELTA
    rows = [
        ("no subscriber", decode_cost_us(lambda: [], args.steps, final), 2.0),
        (
            "list subscriber (every event)",
            decode_cost_us(lambda: [[].append], args.steps, final),
            3.5,
        ),
        (
            "no subscriber, async scheduling",
            decode_cost_us(lambda: [], args.steps, final, async_scheduling=True),
            None,
        ),
        ("no subscriber, DELTA outputs", decode_cost_us(lambda: [], args.steps, delta), None),
        (
            "list subscriber, DELTA outputs",
            decode_cost_us(lambda: [[].append], args.steps, delta),
            None,
        ),
    ]
    print(f"{'engine, 256 requests decoding':40s} {'us/request/step':>16s} {'target':>8s}")
    for name, value, target in rows:
        print(f"{name:40s} {value:16.2f} {'' if target is None else f'{target:.1f}':>8s}")
    print(f"{'ratio list subscriber / none':40s} {rows[1][1] / rows[0][1]:16.2f}")
    print()
    event_ns = event_cost_ns()
    scale = scale_ns()
    print(f"{'per event':40s} {'ns':>16s}")
    print(f"{'event create + dispatch (1 subscriber)':40s} {event_ns:16.0f}")
    print(f"{'scale: attrs.frozen, five fields':40s} {scale.frozen:16.0f}")
    print(f"{'scale: the same, kept in a list':40s} {scale.frozen_kept:16.0f}")
    print(f"{'scale: plain loop over one handler':40s} {scale.loop:16.0f}")
    print(f"{'ratio create+dispatch / frozen(5)':40s} {event_ns / scale.frozen:16.2f}")


if __name__ == "__main__":
    main()
