"""Throughput of the tiny numpy transformer through the whole engine.

Decode: ``batch`` requests are prefilled first, then the timed steps are pure
decode steps (one token per request per step, one forward pass per step).
Prefill: prompts of ``PREFILL_LEN`` tokens, timed from admission until every
prompt is computed (``max_num_batched_tokens`` tokens per forward pass).
Greedy sampling unless the row says otherwise, EOS ignored, default block
size 16, float32. Each figure is the best of ``--repeats`` runs. Run:
``python benchmarks/bench_tiny.py``.

BLAS runs single-threaded unless ``OPENBLAS_NUM_THREADS`` is set: the
matrices are 64 wide, so handing them to threads costs more than it saves,
and on a machine busy with other work it costs far more.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # before numpy is imported

import argparse
import time

from minivllm import LLMEngine, SamplingParams

DECODE_PROMPT_LEN = 64
PREFILL_LEN = 256
PREFILL_REQUESTS = 16
MAX_MODEL_LEN = 1024


def _prompt(i: int, length: int) -> list[int]:
    return [(7 * i + 3 * j) % 256 for j in range(length)]


def _engine(max_num_seqs: int, max_num_batched_tokens: int = 2048) -> LLMEngine:
    return LLMEngine(
        "tiny",
        max_num_seqs=max_num_seqs,
        max_num_batched_tokens=max(max_num_batched_tokens, max_num_seqs),
        max_model_len=MAX_MODEL_LEN,
    )


def decode_tokens_per_s(batch: int, steps: int, temperature: float = 0.0) -> float:
    """Decode tokens per second with ``batch`` requests decoding together."""
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
    t0 = time.perf_counter()
    for _ in range(steps):
        engine.step()
    return batch * steps / (time.perf_counter() - t0)


def prefill_tokens_per_s() -> float:
    """Prompt tokens per second, ``PREFILL_REQUESTS`` prompts of ``PREFILL_LEN`` tokens."""
    engine = _engine(PREFILL_REQUESTS)
    params = SamplingParams(temperature=0, max_tokens=1, ignore_eos=True)
    for i in range(PREFILL_REQUESTS):
        engine.add_request(_prompt(i, PREFILL_LEN), params)
    t0 = time.perf_counter()
    while engine.has_unfinished_requests():
        engine.step()
    return PREFILL_REQUESTS * PREFILL_LEN / (time.perf_counter() - t0)


def main() -> None:
    """Print the throughput table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=64, help="timed decode steps per run")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    rows = []
    for batch in (1, 16, 64):
        best = max(decode_tokens_per_s(batch, args.steps) for _ in range(args.repeats))
        rows.append((f"decode, batch {batch}", best))
    rows.append(
        ("decode, batch 64, temperature 0.8",
         max(decode_tokens_per_s(64, args.steps, 0.8) for _ in range(args.repeats)))
    )
    rows.append(
        (f"prefill, {PREFILL_REQUESTS} x {PREFILL_LEN} tokens",
         max(prefill_tokens_per_s() for _ in range(args.repeats)))
    )
    width = max(len(name) for name, _ in rows)
    print(f"OPENBLAS_NUM_THREADS={os.environ['OPENBLAS_NUM_THREADS']}\n")
    print(f"{'workload':<{width}}  {'tokens/s':>10}")
    for name, rate in rows:
        print(f"{name:<{width}}  {rate:>10.0f}")
    ratio = rows[2][1] / rows[0][1]
    print(f"\ndecode batch 64 / batch 1 = {ratio:.1f}x")


if __name__ == "__main__":
    main()
