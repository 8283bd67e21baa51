"""Fidelity cross-check: random workloads on minivllm and on vLLM 0.22.1's real scheduler.

Each case is a small engine (often a KV cache just big enough for one
request, a tiny token budget, chunked prefill, a long-prefill threshold,
prefix caching) with a few requests that share prefixes, arrive late, are
aborted in any state, stop on EOS or a stop token (or are told to ignore EOS),
have ``min_tokens``, and, under the priority policy, priorities. Both engines
run it with the same scripted model; the request timelines of the two logs
must be equal step for step (:func:`lifecycle_trace.diffing.diff_timelines`).

As a script::

    PYTHONHASHSEED=0 python tests/vllm/fidelity.py --count 300 --seed 1

prints every mismatch (the case and the first step where a request parts)
and a summary per mode. Two known differences are kept out by default. vLLM
frees several requests aborted in one call in ``set()`` order, which depends
on ``PYTHONHASHSEED``; with prefix caching that order decides which cached
blocks survive (``--any-aborts`` lets several aborts a step in). And a
request whose ``min_tokens`` exceeds the room ``max_model_len`` leaves never
finishes on vLLM, while minivllm caps it (``--min-tokens-past-room``).
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections import Counter
from collections.abc import Iterator
from collections.abc import Sequence
from typing import Any

import attrs

from lifecycle_trace.checker import Violation
from lifecycle_trace.checker import check
from lifecycle_trace.checker import format_violations
from lifecycle_trace.diffing import Divergence
from lifecycle_trace.diffing import all_lives
from lifecycle_trace.diffing import diff_timelines
from lifecycle_trace.diffing import format_divergences
from lifecycle_trace.diffing import run_logged
from lifecycle_trace.testing import FakeClock
from lifecycle_trace.testing import Scenario
from lifecycle_trace.testing import ScriptedSampler
from lifecycle_trace.testing import step_limit
from minivllm.bus import Handler
from minivllm.config import EngineConfig
from minivllm.engine.llm_engine import LLMEngine
from minivllm.sampling_params import SamplingParams
from minivllm.tokenizer import ByteTokenizer
from minivllm.workload import WorkloadRequest

EOS = ByteTokenizer.eos_token_id
STOP = 9
MODES = ("sync-fcfs", "sync-priority", "async-fcfs", "async-priority")


@attrs.frozen
class Case:
    """One random workload and the mode it runs in (``scenario.config`` holds the mode too)."""

    seed: int
    mode: str
    scenario: Scenario

    def describe(self) -> str:
        """The case in a few lines, enough to rebuild it by hand."""
        c = self.scenario.config
        lines = [
            f"case seed={self.seed} mode={self.mode}: max_num_seqs={c.max_num_seqs} "
            f"max_num_batched_tokens={c.max_num_batched_tokens} block_size={c.block_size} "
            f"num_gpu_blocks={c.num_gpu_blocks} max_model_len={c.max_model_len} "
            f"chunked={c.enable_chunked_prefill} threshold={c.long_prefill_token_threshold} "
            f"prefix_caching={c.enable_prefix_caching} "
            f"reserve_full_isl={c.scheduler_reserve_full_isl} "
            f"async_scheduling={c.async_scheduling} policy={c.policy}"
        ]
        for r in self.scenario.requests:
            p = r.sampling_params
            lines.append(
                f"  {r.id}: prompt {len(r.prompt_token_ids)} {list(r.prompt_token_ids)[:6]}... "
                f"max_tokens={p.max_tokens} min_tokens={p.min_tokens} "
                f"stop={list(p.stop_token_ids)} ignore_eos={p.ignore_eos} arrival={r.arrival} "
                f"abort={r.abort} priority={r.priority} "
                f"script={dict(self.scenario.sampler.script.get(r.id, {}))}"
            )
        return "\n".join(lines)


def _config(rng: random.Random, mode: str) -> EngineConfig:
    block_size = rng.choice([2, 4, 4, 8, 16])
    max_model_len = rng.randint(12, 64)
    max_num_seqs = rng.randint(1, 5)
    chunked = rng.random() < 0.8
    min_blocks = -(max_model_len // -block_size) + 1
    blocks = min_blocks + rng.choice([0, 0, 1, 2, 3, rng.randint(4, 3 * min_blocks)])
    if chunked:
        budget = rng.choice([rng.randint(max_num_seqs, max_num_seqs + 8), rng.randint(8, 96)])
        budget = max(budget, max_num_seqs)
    else:  # vLLM refuses a budget below max_model_len without chunked prefill
        budget = rng.randint(max(max_model_len, max_num_seqs), 2 * max_model_len)
    return EngineConfig(
        max_num_seqs=max_num_seqs,
        max_num_batched_tokens=budget,
        block_size=block_size,
        num_gpu_blocks=blocks,
        max_model_len=max_model_len,
        enable_chunked_prefill=chunked,
        long_prefill_token_threshold=rng.choice([0, 0, 0, rng.randint(1, max_model_len)]),
        enable_prefix_caching=rng.random() < 0.5,
        scheduler_reserve_full_isl=rng.random() < 0.8,
        async_scheduling=mode.startswith("async"),
        policy=mode.split("-")[1],
    )


def _prompt(rng: random.Random, config: EngineConfig, prefixes: list[list[int]]) -> list[int]:
    top = config.max_model_len - 1
    bs = config.block_size
    edges = [n for n in (1, bs - 1, bs, bs + 1, 2 * bs, top) if 1 <= n <= top]
    n = rng.choice(edges) if rng.random() < 0.4 else rng.randint(1, top)
    head = list(rng.choice(prefixes))[:n] if rng.random() < 0.5 else []
    return head + [rng.randint(10, 13) for _ in range(n - len(head))]


def make_case(
    seed: int, mode: str, one_abort_per_step: bool = True, min_tokens_past_room: bool = False
) -> Case:
    """The random case of ``seed`` in ``mode`` (one of :data:`MODES`).

    ``min_tokens_past_room`` lets ``min_tokens`` exceed what ``max_model_len``
    leaves after the prompt: vLLM 0.22.1 then never finishes the request (it
    can schedule no more tokens and ``check_stop`` waits for ``min_tokens``),
    where minivllm caps it; by default such requests are not generated.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    rng = random.Random(f"{seed}-{mode}")
    config = _config(rng, mode)
    bs = config.block_size
    prefixes = [
        [rng.randint(10, 13) for _ in range(rng.randint(bs, max(bs, 3 * bs)))] for _ in range(2)
    ]
    requests: list[WorkloadRequest] = []
    script: dict[str, dict[int, int]] = {}
    abort_steps: set[int] = set()
    for i in range(rng.randint(1, 7)):
        rid = f"r{i}"
        prompt = _prompt(rng, config, prefixes)
        max_tokens = rng.choice([None, rng.randint(1, 16), rng.randint(1, 6)])
        min_tokens = rng.choice([0, 0, rng.randint(0, max_tokens if max_tokens else 8)])
        if not min_tokens_past_room:
            min_tokens = min(min_tokens, config.max_model_len - len(prompt))
        stop_ids = (STOP,) if rng.random() < 0.3 else ()
        params = SamplingParams(
            max_tokens=max_tokens,
            min_tokens=min_tokens,
            stop_token_ids=stop_ids,
            ignore_eos=rng.random() < 0.2,
        )
        positions = rng.sample(range(18), k=rng.choice([0, 0, 1, 2]))
        tokens = {p: rng.choice([EOS, *stop_ids]) for p in positions}
        if tokens:
            script[rid] = tokens
        abort = None
        if rng.random() < 0.3:
            abort = rng.randint(0, 14)
            if one_abort_per_step and abort in abort_steps:
                abort = None
            elif abort is not None:
                abort_steps.add(abort)
        requests.append(
            WorkloadRequest(
                id=rid,
                prompt_token_ids=prompt,
                sampling_params=params,
                arrival=rng.randint(0, 6) if rng.random() < 0.4 else 0,
                abort=abort,
                priority=rng.randint(0, 3) if mode.endswith("priority") else 0,
            )
        )
    return Case(seed, mode, Scenario(config, tuple(requests), ScriptedSampler(script)))


def cases(
    count: int,
    seed: int = 0,
    modes: Sequence[str] = MODES,
    one_abort_per_step: bool = True,
    min_tokens_past_room: bool = False,
) -> Iterator[Case]:
    """``count`` cases, seeds ``seed``, ``seed + 1``, ..., the modes taken in turn."""
    for i in range(count):
        mode = modes[i % len(modes)]
        yield make_case(seed + i, mode, one_abort_per_step, min_tokens_past_room)


def minivllm_factory(case: Case) -> Any:
    """``make_engine`` for minivllm in the case's mode."""

    def make(scenario: Scenario, observers: Sequence[Handler]) -> LLMEngine:
        return LLMEngine(
            scenario.model(),
            **scenario.engine_kwargs,
            observers=observers,
            clock=FakeClock(),
            raise_observer_errors=True,
        )

    return make


def vllm_factory(case: Case) -> Any:
    """``make_engine`` for vLLM's scheduler in the case's mode, with the same script."""
    from lifecycle_trace.vllm.driver import VllmEngine

    sampler = case.scenario.sampler

    def token(request_id: str, index: int) -> int:
        return sampler.script.get(request_id, {}).get(index, sampler.filler)

    def make(scenario: Scenario, observers: Sequence[Handler]) -> Any:
        return VllmEngine(token, observers=observers, clock=FakeClock(), **scenario.engine_kwargs)

    return make


@attrs.frozen
class Outcome:
    """What a case gave: where the engines part, and what the checker says of each log."""

    divergences: list[Divergence]
    minivllm_violations: list[Violation]
    vllm_violations: list[Violation]

    @property
    def ok(self) -> bool:
        """The same lifecycles, and both logs pass the checker."""
        return not (self.divergences or self.minivllm_violations or self.vllm_violations)

    def report(self) -> str:
        """The divergences and violations, for a failure message."""
        parts = []
        if self.divergences:
            parts.append(format_divergences(self.divergences, ("minivllm", "vllm")))
        for engine, found in (
            ("minivllm", self.minivllm_violations),
            ("vllm", self.vllm_violations),
        ):
            if found:
                parts.append(f"{engine} log:\n{format_violations(found)}")
        return "\n".join(parts)


def run_case(case: Case) -> Outcome:
    """Run the case on both engines, diff their request lives and check both logs."""
    limit = step_limit(case.scenario)
    mini = run_logged(minivllm_factory(case), case.scenario, limit)
    real = run_logged(vllm_factory(case), case.scenario, limit)
    return Outcome(
        diff_timelines(all_lives(mini), all_lives(real), context=2), check(mini), check(real)
    )


def compare(case: Case) -> list[Divergence]:
    """Run the case on both engines; the request lives that part (empty: the same)."""
    return run_case(case).divergences


def main(argv: Sequence[str] | None = None) -> int:
    """Run random cases on both engines and report every mismatch; exit 1 if any."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES))
    parser.add_argument("--any-aborts", action="store_true", help="allow several aborts a step")
    parser.add_argument(
        "--min-tokens-past-room",
        action="store_true",
        help="allow min_tokens beyond max_model_len (vLLM never finishes such a request)",
    )
    args = parser.parse_args(argv)
    started = time.perf_counter()
    runs: Counter[str] = Counter()
    bad: Counter[str] = Counter()
    errors: Counter[str] = Counter()
    for case in cases(
        args.count, args.seed, args.modes, not args.any_aborts, args.min_tokens_past_room
    ):
        runs[case.mode] += 1
        try:
            outcome = run_case(case)
        except Exception as exc:  # a crash on either side is a finding too
            errors[case.mode] += 1
            print(f"ERROR {case.describe()}\n  {type(exc).__name__}: {exc}\n")
            continue
        if not outcome.ok:
            bad[case.mode] += 1
            print(f"MISMATCH {case.describe()}\n{outcome.report()}\n")
    elapsed = time.perf_counter() - started
    for mode in args.modes:
        print(
            f"{mode}: {runs[mode]} cases, {bad[mode]} mismatched or violating, "
            f"{errors[mode]} errors"
        )
    print(f"{sum(runs.values())} cases in {elapsed:.1f} s")
    return 1 if bad or errors else 0


if __name__ == "__main__":
    sys.exit(main())
