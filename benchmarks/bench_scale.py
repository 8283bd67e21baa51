"""Scale: the engine's per-step cost as concurrency grows and as finished requests pile up,
and the peak memory of long traced runs.

- Per-step cost at 16 to 1,024 concurrent decoding requests (the engine of
  ``bench_engine``): the cost per request per step should stay flat, that is
  the step cost grows linearly in the number of scheduled requests.
- The same measurement on an engine that first ran many short requests to
  completion: a step must not cost more because of requests that are gone.
- Peak resident memory (``VmHWM``) of a run of N short requests, fed so
  that at most 64 are in flight, each size in a fresh subprocess: with the
  streaming sink it should not grow with N; with the in-memory recorder it does.
- Peak resident memory of ``lifecycle-trace check``, ``stats``, ``show`` and
  ``export --format chrome`` (written to the null device) reading the logs of
  such runs: it should not grow with the log's size.

Run: ``python benchmarks/bench_scale.py [--quick]``.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
from collections.abc import Callable
from collections.abc import Sequence
from typing import Any

from bench_engine import decode_sample_us

from lifecycle_trace.log import EventLog
from lifecycle_trace.log import JsonlWriter
from minivllm import LLMEngine
from minivllm import SamplingParams

CONCURRENCY = (16, 64, 256, 1024)
IN_FLIGHT = 64
MODES = ("none", "sink", "recorder")
CLI_COMMANDS = ("check", "stats", "show", "export --format chrome")
"""The log-reading commands whose peak memory is measured: the name, then its options."""


def step_costs(sizes: Sequence[int], steps: int, repeats: int) -> dict[int, float]:
    """Best decode cost per request per step (us) at each concurrency, sizes round-robin.

    The best of the repeats: on a shared machine other work only ever adds time.
    """
    samples: dict[int, list[float]] = {n: [] for n in sizes}
    for _ in range(repeats):
        for n in sizes:
            samples[n].append(decode_sample_us([], steps, num_requests=n))
    return {n: min(v) for n, v in samples.items()}


def history_costs(
    histories: Sequence[int], concurrent: int, steps: int, repeats: int
) -> dict[int, float]:
    """Best decode cost per request per step (us) after each number of finished requests.

    ``0`` is a fresh engine; measured round-robin, so the rows see the same machine.
    """
    samples: dict[int, list[float]] = {h: [] for h in histories}
    for _ in range(repeats):
        for h in histories:
            samples[h].append(decode_sample_us([], steps, num_requests=concurrent, history=h))
    return {h: min(v) for h, v in samples.items()}


def run_rolling(num_requests: int, observers: list[Callable[[Any], None]]) -> LLMEngine:
    """Feed ``num_requests`` short requests (16-token prompts, 4 outputs), at most 64 in flight."""
    engine = LLMEngine(
        max_num_seqs=IN_FLIGHT,
        max_num_batched_tokens=1024,
        block_size=16,
        num_gpu_blocks=4 * IN_FLIGHT + 1,
        observers=observers,
    )
    params = SamplingParams(max_tokens=4, ignore_eos=True)
    added = 0
    while added < num_requests or engine.has_unfinished_requests():
        while added < num_requests and engine.get_num_unfinished_requests() < IN_FLIGHT:
            engine.add_request([(added + j) % 256 for j in range(16)], params)
            added += 1
        engine.step()
    return engine


def peak_rss_kib() -> int:
    """This process's peak resident memory in KiB.

    ``VmHWM`` where Linux has it: ``ru_maxrss`` survives ``exec``, so a child
    started by a big parent would report the parent's peak.
    """
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux


def _child(num_requests: int, mode: str) -> None:
    """In a fresh process: one run, then print the peak resident memory in KiB."""
    if mode == "sink":
        with JsonlWriter(os.devnull) as sink:
            run_rolling(num_requests, [sink])
    elif mode == "recorder":
        log = EventLog()
        run_rolling(num_requests, [log])
    else:
        run_rolling(num_requests, [])
    print(peak_rss_kib())


def write_log(path: str, num_requests: int) -> int:
    """Write the log of a :func:`run_rolling` run to ``path``; return its number of events."""
    with JsonlWriter(path) as sink:
        run_rolling(num_requests, [sink])
    return sink.num_written


def _cli_child(log: str, command: str) -> None:
    """In a fresh process: run ``lifecycle-trace COMMAND LOG`` quietly, print the peak in KiB."""
    import contextlib
    import io

    from lifecycle_trace.cli import main

    name, *options = command.split()
    if name == "export":
        # To the null device: captured output would be counted as the command's memory.
        options += ["-o", os.devnull]
    with contextlib.redirect_stdout(io.StringIO()):
        status = main([name, log, *options])
    if status not in (0, 1):
        raise SystemExit(f"lifecycle-trace {command} {log} exited with {status}")
    print(peak_rss_kib())


def command_peak_rss_mib(log: str, command: str) -> float:
    """Peak resident memory (MiB) of ``lifecycle-trace COMMAND LOG`` in a fresh process."""
    result = subprocess.run(
        [sys.executable, __file__, "--child-cli", log, command],
        capture_output=True,
        text=True,
        check=True,
    )
    return int(result.stdout.split()[-1]) / 1024


def peak_rss_mib(num_requests: int, mode: str) -> float:
    """Peak resident memory (MiB) of a fresh process running :func:`run_rolling` in ``mode``."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    result = subprocess.run(
        [sys.executable, __file__, "--child", str(num_requests), mode],
        capture_output=True,
        text=True,
        check=True,
    )
    return int(result.stdout.split()[-1]) / 1024


def main() -> None:
    """Print the scale table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller runs, fewer repeats")
    parser.add_argument("--child", nargs=2, metavar=("N", "MODE"), help=argparse.SUPPRESS)
    parser.add_argument("--child-cli", nargs=2, metavar=("LOG", "CMD"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        _child(int(args.child[0]), args.child[1])
        return
    if args.child_cli is not None:
        _cli_child(*args.child_cli)
        return
    steps, repeats = (10, 1) if args.quick else (30, 3)
    costs = step_costs(CONCURRENCY, steps, repeats)
    print(f"{'concurrent':>10}  {'us/request/step':>15}  {'ms/step':>8}")
    for n, cost in costs.items():
        print(f"{n:>10}  {cost:>15.2f}  {cost * n / 1000:>8.2f}")
    histories = (0, 2_000, 10_000) if args.quick else (0, 10_000, 50_000)
    for h, cost in history_costs(histories, 256, steps, repeats).items():
        print(f"256 concurrent after {h:,} finished requests: {cost:.2f} us/request/step")
    small, large = (2_000, 20_000) if args.quick else (10_000, 100_000)
    for mode in MODES:
        a, b = peak_rss_mib(small, mode), peak_rss_mib(large, mode)
        print(f"peak RSS, {mode:8s}: {small:,} requests {a:.1f} MiB, {large:,} {b:.1f} MiB")
    with tempfile.TemporaryDirectory() as tmp:
        logs = [os.path.join(tmp, f"{n}.jsonl") for n in (small, large)]
        for path, n in zip(logs, (small, large), strict=True):
            write_log(path, n)
        for command in CLI_COMMANDS:
            a, b = (command_peak_rss_mib(path, command) for path in logs)
            print(f"peak RSS, lifecycle-trace {command}: {a:.1f} MiB, {b:.1f} MiB")


if __name__ == "__main__":
    main()
