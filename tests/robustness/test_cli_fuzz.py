"""Both command lines, driven with generated arguments and generated files: never a traceback.

Every call ends with one of the documented exit statuses (0 done, 1 found something, 2 usage,
3 input or output failure); 4, the internal-error status, would be a bug, and so would any
traceback on either stream.
"""

from __future__ import annotations

import io
import os
from contextlib import redirect_stderr
from contextlib import redirect_stdout
from pathlib import Path

import pytest
from hypothesis import HealthCheck
from hypothesis import event
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

from helpers.export import run_workload_logged
from lifecycle_trace import cli as trace_cli
from lifecycle_trace.cli._demo import demo_workload
from lifecycle_trace.log import write_jsonl
from minivllm import cli as engine_cli

DOCUMENTED = {0, 1, 2, 3}

COMMANDS = {
    "lifecycle-trace": (
        trace_cli,
        [
            *("demo", "lab", "run", "show", "check", "stats", "slice", "merge", "export"),
            *("plot", "diff", "nope", "--version", "--help"),
        ],
    ),
    "minivllm": (engine_cli, ["generate", "replay", "nope", "--version", "--help"]),
}

OPTIONS = [
    "-o", "--output", "--format", "--lenient", "--bounds-only", "--width", "--limit",
    "--request", "--requests", "--steps", "--epoch-ns", "--row-group-size", "--title",
    "--context", "--engine-id", "--priority", "--model", "--max-num-seqs",
    "--max-num-batched-tokens", "--max-model-len", "--num-gpu-blocks", "--block-size",
    "--long-prefill-token-threshold", "--no-chunked-prefill", "--enable-prefix-caching",
    "--async", "--policy", "--seed", "--max-tokens", "--min-tokens", "--temperature", "--top-p",
    "--top-k", "--ignore-eos", "--stop-token-id", "--stop", "--observer", "--json-log", "--log",
]  # fmt: skip

VALUES = [
    "0", "1", "3", "-1", "2.5", "nan", "x", "", "é", "1:3", ":2", "3:1", "chrome", "otel",
    "prometheus", "parquet", "svg", "fcfs", "priority", "dummy", "tiny", "json-log",
    str(2**63), str(2**64), "\x00", "r0", "0,1",
]  # fmt: skip

FILES = ["good.jsonl", "damaged.jsonl", "cut.jsonl", "empty.jsonl", "noise.bin", "missing.jsonl"]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory holding a whole log, damaged and cut copies, an empty file and noise."""
    root = tmp_path_factory.mktemp("fuzz")
    good = root / "good.jsonl"
    write_jsonl(run_workload_logged(demo_workload()), good)
    data = good.read_bytes()
    lines = data.splitlines(keepends=True)
    (root / "damaged.jsonl").write_bytes(b"".join([*lines[:9], b'{"seq": "three"}\n', *lines[9:]]))
    (root / "cut.jsonl").write_bytes(data[: len(data) // 2])
    (root / "empty.jsonl").write_bytes(b"")
    (root / "noise.bin").write_bytes(bytes(range(256)) * 3)
    return root


def _argument() -> st.SearchStrategy[list[str]]:
    return st.one_of(
        st.sampled_from(FILES).map(lambda f: [f]),
        st.sampled_from(OPTIONS).map(lambda o: [o]),
        st.tuples(st.sampled_from(OPTIONS), st.sampled_from(VALUES + FILES)).map(list),
        st.sampled_from(VALUES).map(lambda v: [v]),
        st.text(max_size=6).map(lambda t: [t]),
    )


@st.composite
def command_lines(draw: st.DrawFn) -> tuple[str, list[str]]:
    """A program, one of its commands (or a wrong one) and a handful of arguments."""
    program = draw(st.sampled_from(sorted(COMMANDS)))
    command = draw(st.sampled_from(COMMANDS[program][1]))
    # Most commands read a log: give one first more often than chance would.
    first = draw(st.lists(st.sampled_from([*FILES, "generated.jsonl"]), max_size=2))
    rest = draw(st.lists(_argument(), max_size=2))
    return program, [command, *first, *(a for part in rest for a in part)]


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(line=command_lines(), content=st.binary(max_size=64))
def test_no_traceback_and_a_documented_exit_status(
    workdir: Path, line: tuple[str, list[str]], content: bytes
) -> None:
    program, argv = line
    (workdir / "generated.jsonl").write_bytes(content)
    out, err = io.StringIO(), io.StringIO()
    cwd = os.getcwd()
    os.chdir(workdir)
    try:
        with redirect_stdout(out), redirect_stderr(err):
            try:
                status = COMMANDS[program][0].main(argv)
            except SystemExit as exit_:  # argparse's own --help ends this way
                status = exit_.code if isinstance(exit_.code, int) else 2
    finally:
        os.chdir(cwd)
    shown = out.getvalue() + err.getvalue()
    assert "Traceback (most recent call last)" not in shown, (program, argv, shown[-2000:])
    assert status in DOCUMENTED, (program, argv, status, err.getvalue()[-500:])
    event(f"exit {status}")
