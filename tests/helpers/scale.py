"""Helpers for the scale tests: long runs that keep a bounded number of requests in flight."""

from __future__ import annotations

import random
from collections.abc import Callable
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from lifecycle_trace.cli import main
from lifecycle_trace.sink import JsonlWriter
from lifecycle_trace.testing.scenario import FakeClock
from minivllm import LLMEngine
from minivllm import SamplingParams


def run_rolling(
    num_requests: int,
    observers: Iterable[Callable[[Any], None]] = (),
    *,
    in_flight: int = 32,
    engine_id: str = "engine-0",
    seed: int = 0,
    abort_every: int = 0,
    uniform: bool = False,
    shared_prefix: int = 0,
    **engine_kwargs: Any,
) -> LLMEngine:
    """Feed ``num_requests`` short requests, topping up to ``in_flight`` before each step.

    With ``abort_every`` > 0, every such request is aborted right after it is added.
    With ``uniform``, every request has the same prompt length and output length,
    so the engine's live state has the same shape however long the run. Every
    prompt starts with the same ``shared_prefix`` tokens (prefix-cache hits).
    """
    rng = random.Random(seed)
    kwargs: dict[str, Any] = {
        "max_num_seqs": in_flight,
        "max_num_batched_tokens": 256,
        "block_size": 8,
        "num_gpu_blocks": 4 * in_flight + 1,
        "max_model_len": 128,
    }
    kwargs.update(engine_kwargs)
    engine = LLMEngine(observers=list(observers), clock=FakeClock(), engine_id=engine_id, **kwargs)
    added = 0
    while added < num_requests or engine.has_unfinished_requests():
        while added < num_requests and engine.get_num_unfinished_requests() < in_flight:
            max_tokens, prompt_len = (4, 16) if uniform else (rng.randint(1, 6), rng.randint(2, 30))
            params = SamplingParams(max_tokens=max_tokens, ignore_eos=True)
            prompt = [7] * shared_prefix + [rng.randrange(256) for _ in range(prompt_len)]
            rid = engine.add_request(prompt, params)
            added += 1
            if abort_every and added % abort_every == 0:
                engine.abort_request(rid)
        engine.step()
    return engine


def write_rolling(path: Path, num_requests: int, **kwargs: Any) -> Path:
    """Run :func:`run_rolling` with the streaming sink writing to ``path``; return ``path``."""
    with JsonlWriter(path) as sink:
        run_rolling(num_requests, (sink,), **kwargs)
    return path


def write_merged(directory: Path, num_requests: int = 30, num_engines: int = 2) -> Path:
    """Logs of ``num_engines`` engines (``rank-0``, ...), merged into ``directory/merged.jsonl``."""
    logs = [
        write_rolling(directory / f"rank{i}.jsonl", num_requests, engine_id=f"rank-{i}", seed=i)
        for i in range(num_engines)
    ]
    out = directory / "merged.jsonl"
    assert main(["merge", *map(str, logs), "-o", str(out)]) == 0
    return out
