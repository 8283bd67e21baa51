"""Run a test suite once per mutant and print which rule caught each one.

    python tests/mutation/run_mutants.py [-k SUBSTRING] [--timeout S] [SUITE ...]

SUITE defaults to ``tests/properties``; each run uses the ci hypothesis profile
without its shrink phase (the same examples, so the same catches; ``--shrink``
keeps it) and runs to the end. A mutant counts as *caught* only if a
failure report names a rule (``[rule_name]`` with a name the checker or
the reference knows); a failure that names none is a *crash*, and a suite that
passes *missed* it. The table is Markdown, so it can go straight into notes.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path[:0] = [str(HERE), str(HERE.parent)]

from policy_mutants import ALL_MUTANTS  # noqa: E402
from policy_mutants import part_of  # noqa: E402

_RULE = re.compile(r"\[([a-z_][a-z0-9_.]*)\]")
_FAILED = re.compile(r"^(?:FAILED|ERROR) (\S+)", re.MULTILINE)
_EXCEPTION = re.compile(r"^E\s+([A-Za-z_.]*(?:Error|Exception|Stalled|Mismatch)[A-Za-z]*)\b", re.M)


def known_rules() -> set[str]:
    """Every rule name a report may give: the checker's and the reference's."""
    rules: set[str] = set()
    try:
        from lifecycle_trace.check import RULES

        rules.update(RULES)
    except ImportError:
        from lifecycle_trace.checker import INVARIANTS

        rules.update(INVARIANTS)
    try:
        from lifecycle_trace.testing.reference import REFERENCE_RULES
    except ImportError:
        try:
            from lifecycle_trace.testing.reference import REFERENCE_RULES
        except ImportError:
            REFERENCE_RULES = {}
    rules.update(REFERENCE_RULES)
    return rules


def classify(returncode: int, output: str, rules: set[str]) -> tuple[str, str, str]:
    """``(result, evidence, test)`` from one pytest run's exit code and output."""
    failed = _FAILED.findall(output)
    test = ", ".join(dict.fromkeys(f.split("::", 1)[-1].split("[")[0] for f in failed))
    if returncode == 0:
        return "missed", "", ""
    if returncode not in (1,):
        tail = output.strip().splitlines()[-1:] or ["?"]
        return "error", tail[0][:80], test
    named = [r for r in _RULE.findall(output) if r in rules]
    if named:
        return "caught", named[0], test
    crash = _EXCEPTION.findall(output)
    return "crash", crash[0] if crash else "unnamed failure", test


def run_one(
    name: str, suite: list[str], timeout: float, shrink: bool
) -> tuple[str, str, str, float]:
    """Run the suite under one mutant."""
    env = dict(os.environ)
    env["CI"] = "true"
    env["HYPOTHESIS_PROFILE"] = "ci" if shrink else "ci-no-shrink"
    env["MINIVLLM_MUTANT"] = name
    env["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(HERE), str(HERE.parent), env.get("PYTHONPATH")])
    )
    command = [
        sys.executable,
        "-m",
        "pytest",
        "-p",
        "mutant_plugin",
        "-p",
        "no:cacheprovider",
        "-q",
        "--tb=short",
        *suite,
    ]
    start = time.monotonic()
    try:
        done = subprocess.run(
            command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout
        )
    except subprocess.TimeoutExpired:
        return "timeout", f"over {timeout:.0f} s", "", time.monotonic() - start
    result, evidence, test = classify(done.returncode, done.stdout + done.stderr, known_rules())
    return result, evidence, test, time.monotonic() - start


def main(argv: list[str] | None = None) -> int:
    """Run every selected mutant; print the table; exit 1 unless all were caught."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("suite", nargs="*", default=["tests/properties"])
    parser.add_argument("-k", dest="select", default="", help="only mutants whose name has this")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds per mutant")
    parser.add_argument("--shrink", action="store_true", help="shrink failures (slower)")
    args = parser.parse_args(argv)
    mutants = [m for m in ALL_MUTANTS if args.select in m.name]
    print("| part | mutant | result | rule or crash | test | s |")
    print("|---|---|---|---|---|---|")
    caught = 0
    for mutant in mutants:
        result, evidence, test, seconds = run_one(
            mutant.name, args.suite, args.timeout, args.shrink
        )
        caught += result == "caught"
        print(
            f"| {part_of(mutant.name)} | {mutant.name} | {result} | {evidence} | {test} "
            f"| {seconds:.0f} |",
            flush=True,
        )
    print(f"\n{caught} of {len(mutants)} mutants caught with a named rule")
    return 0 if caught == len(mutants) else 1


if __name__ == "__main__":
    raise SystemExit(main())
