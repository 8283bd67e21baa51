"""Throughput of the tiny numpy transformer through the whole engine.

Decode: ``batch`` requests are prefilled first, then the timed steps are pure
decode steps (one token per request per step, one forward pass per step).
Prefill: prompts of ``PREFILL_LEN`` tokens, 2048 prompt tokens per step (one
forward pass). Greedy sampling unless the row says otherwise, EOS ignored,
default block size 16, float32. Run: ``python benchmarks/bench_tiny.py``.

Each rate comes from the median step of a run, and each figure is the best
of ``--repeats`` runs taken round-robin. Two columns: tokens per second of
wall-clock time, and per second of this process's CPU time; on a machine
busy with other work the second is the steadier measure of the engine itself.

BLAS runs single-threaded unless ``OPENBLAS_NUM_THREADS`` is set: the
matrices are 64 wide, so handing them to threads costs more than it saves,
and on a busy machine it costs far more.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # before numpy is imported

import argparse
import statistics
import time
from collections.abc import Callable

import attrs

from minivllm import LLMEngine
from minivllm import SamplingParams
from minivllm.events import StepFinished

DECODE_PROMPT_LEN = 64
PREFILL_LEN = 256
PREFILL_REQUESTS = 64
MAX_NUM_BATCHED_TOKENS = 2048


@attrs.frozen
class Rate:
    """Tokens per second of wall-clock time and per second of this process's CPU time."""

    wall: float
    cpu: float


def _prompt(i: int, length: int) -> list[int]:
    return [(7 * i + 3 * j) % 256 for j in range(length)]


def _engine(max_num_seqs: int) -> LLMEngine:
    return LLMEngine(
        "tiny", max_num_seqs=max_num_seqs, max_num_batched_tokens=MAX_NUM_BATCHED_TOKENS
    )


def _timed_steps(engine: LLMEngine, steps: int | None = None) -> Rate:
    """Step ``steps`` times (or until every request finishes), timing each step both ways."""
    tokens: list[int] = []
    engine.bus.subscribe(
        lambda event: tokens.append(sum(event.num_scheduled_tokens.values())), StepFinished
    )
    wall: list[float] = []
    cpu: list[float] = []
    while engine.has_unfinished_requests() and (steps is None or len(wall) < steps):
        w0, c0 = time.perf_counter(), time.process_time()
        engine.step()
        wall.append(time.perf_counter() - w0)
        cpu.append(time.process_time() - c0)
    per_step = statistics.median(tokens)
    return Rate(per_step / statistics.median(wall), per_step / statistics.median(cpu))


def decode_rate(batch: int, steps: int, temperature: float = 0.0) -> Rate:
    """Decode throughput with ``batch`` requests decoding together."""
    engine = _engine(batch)
    params = SamplingParams(
        temperature=temperature, top_p=0.95, max_tokens=steps + 1, ignore_eos=True
    )
    for i in range(batch):
        engine.add_request(_prompt(i, DECODE_PROMPT_LEN), params)
    while engine.scheduler.waiting or any(
        r.num_computed_tokens < r.num_prompt_tokens for r in engine.scheduler.running
    ):
        engine.step()
    return _timed_steps(engine, steps)


def prefill_rate() -> Rate:
    """Prefill throughput: ``PREFILL_REQUESTS`` prompts of ``PREFILL_LEN`` tokens."""
    engine = _engine(PREFILL_REQUESTS)
    params = SamplingParams(temperature=0, max_tokens=1, ignore_eos=True)
    for i in range(PREFILL_REQUESTS):
        engine.add_request(_prompt(i, PREFILL_LEN), params)
    return _timed_steps(engine)


def main() -> None:
    """Print the throughput table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=64, help="timed decode steps per run")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    workloads: dict[str, Callable[[], Rate]] = {
        "decode, batch 1": lambda: decode_rate(1, args.steps),
        "decode, batch 16": lambda: decode_rate(16, args.steps),
        "decode, batch 64": lambda: decode_rate(64, args.steps),
        "decode, batch 64, temperature 0.8": lambda: decode_rate(64, args.steps, 0.8),
        f"prefill, {PREFILL_REQUESTS} x {PREFILL_LEN} tokens": prefill_rate,
    }
    # Round-robin, so a busy spell on the machine does not land on one row only.
    best = {name: Rate(0.0, 0.0) for name in workloads}
    for _ in range(args.repeats):
        for name, measure in workloads.items():
            rate = measure()
            best[name] = Rate(max(best[name].wall, rate.wall), max(best[name].cpu, rate.cpu))
    width = max(map(len, best))
    print(f"OPENBLAS_NUM_THREADS={os.environ['OPENBLAS_NUM_THREADS']}\n")
    print(f"{'workload':<{width}}  {'tokens/s':>10}  {'tokens/CPU-s':>12}")
    for name, rate in best.items():
        print(f"{name:<{width}}  {rate.wall:>10.0f}  {rate.cpu:>12.0f}")
    one, many = best["decode, batch 1"], best["decode, batch 64"]
    print(
        f"\ndecode batch 64 / batch 1: {many.wall / one.wall:.1f}x (wall), "
        f"{many.cpu / one.cpu:.1f}x (CPU)"
    )


if __name__ == "__main__":
    main()
