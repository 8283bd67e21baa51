"""docs/lab-02-real-vllm.md runs as written: its commands in order, their output as shown.

A ``console`` block holds commands (``$ ...``, a heredoc running on until its
terminator) each followed by the output it shows. Shown output must appear in
the command's output (stdout and stderr, as a terminal shows them) in order; ``...`` stands for
any lines, and ``(exit status N)`` for a non-zero exit. vLLM's log timestamps
are compared as ``MM-DD hh:mm:ss``. ``python`` blocks run in the same folder;
a ``text`` block after one is what it prints.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import subprocess
import sys
from pathlib import Path

from helpers.vllm import skip_without_vllm

skip_without_vllm()

PAGE = Path(__file__).parents[2] / "docs" / "lab-02-real-vllm.md"
BLOCK = re.compile(r"```(console|python|text)\n(.*?)```", re.DOTALL)
TIMESTAMP = re.compile(r"\b\d\d-\d\d \d\d:\d\d:\d\d\b")


def _steps() -> list[tuple[str, str, list[str]]]:
    """(kind, command or code, shown output lines) in page order."""
    steps: list[tuple[str, str, list[str]]] = []
    for kind, body in BLOCK.findall(PAGE.read_text()):
        if kind == "python":
            steps.append(("python", body, []))
            continue
        if kind == "text":  # what the python block before it prints
            assert steps and steps[-1][0] == "python", "a text block follows a python block"
            steps[-1] = ("python", steps[-1][1], body.splitlines())
            continue
        lines = body.splitlines()
        i = 0
        while i < len(lines):
            command = lines[i].removeprefix("$ ")
            i += 1
            heredoc = re.search(r"<<'(\w+)'", command)
            if heredoc:
                while lines[i] != heredoc.group(1):
                    command += "\n" + lines[i]
                    i += 1
                command += "\n" + lines[i]
                i += 1
            shown = []
            while i < len(lines) and not lines[i].startswith("$ "):
                shown.append(lines[i])
                i += 1
            steps.append(("console", command, shown))
    return steps


def _normal(line: str) -> str:
    return TIMESTAMP.sub("MM-DD hh:mm:ss", line.rstrip())


def _assert_shown(command: str, shown: list[str], output: list[str]) -> None:
    have = [_normal(line) for line in output]
    at = 0
    gap = False
    for want in map(_normal, shown):
        if want == "...":
            gap = True
            continue
        if gap:
            while at < len(have) and have[at] != want:
                at += 1
        assert at < len(have) and have[at] == want, (
            f"$ {command}\nexpected line {want!r}; the command printed:\n" + "\n".join(output)
        )
        at += 1
        gap = False
    if not gap:
        assert at == len(have), f"$ {command}\nprinted more than the page shows:\n" + "\n".join(
            output[at:]
        )


def test_every_command_of_lab_02_runs_as_shown(tmp_path: Path) -> None:
    steps = _steps()
    assert sum(kind == "console" for kind, _, _ in steps) >= 8
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    for name in ("VLLM_LOGGING_LEVEL", "VLLM_LOGGING_STREAM"):
        env.pop(name, None)
    for kind, command, shown in steps:
        if kind == "python":
            cwd = Path.cwd()
            printed = io.StringIO()
            os.chdir(tmp_path)
            try:
                with contextlib.redirect_stdout(printed):
                    exec(compile(command, str(PAGE), "exec"), {"__name__": "__lab_02__"})
            finally:
                os.chdir(cwd)
            if shown:
                _assert_shown(command, shown, printed.getvalue().splitlines())
            continue
        done = subprocess.run(
            ["bash", "-c", command],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=600,
        )
        output = done.stdout.splitlines()
        if done.returncode:
            output.append(f"(exit status {done.returncode})")
        _assert_shown(command, shown, output)


# Every `FILE.py:LINE` the page cites (outside the debug log it shows), and what is there.
CITED = {
    "v1/engine/core.py": {
        337: "def add_request(",
        399: "def log_iteration_details(",
        428: "def step(self)",
        469: "def step_with_batch_queue(",
        1215: 'logger.debug("EngineCore waiting for work.")',
        1227: 'logger.debug("EngineCore loop active.")',
    },
    "v1/core/sched/scheduler.py": {
        329: "def schedule(",
        563: "logger.debug(",
        803: "request.status = RequestStatus.RUNNING",
        929: "def _preempt_request(",
        951: "def _update_after_schedule(",
        1283: "def update_from_output(",
        1649: "def _update_request_with_output(",
        1755: "def add_request(",
        1779: "def finish_requests(",
        1842: "def _free_request(",
        1860: "def _free_blocks(",
        2152: "logger.debug(",
        2161: "logger.debug(",
    },
    "v1/core/kv_cache_manager.py": {236: "def allocate_slots(", 429: "def free("},
    "v1/core/sched/utils.py": {94: "def check_stop("},
    "v1/request.py": {216: "def append_output_token_ids(", 315: "class RequestStatus("},
}
CITATION = re.compile(r"`(?:[\w/]+/)?(\w+\.py):(\d+)`((?:, `\d+`)*)")


def test_every_vllm_line_the_page_cites_is_what_it_says() -> None:
    import vllm

    root = Path(vllm.__file__).parent
    cited: set[tuple[str, int]] = set()
    for name, line, more in CITATION.findall(PAGE.read_text()):
        for n in (line, *re.findall(r"\d+", more)):
            cited.add((name, int(n)))
    expected = {(path.rsplit("/", 1)[-1], n) for path, lines in CITED.items() for n in lines}
    assert cited == expected
    for path, lines in CITED.items():
        source = (root / path).read_text().splitlines()
        for number, text in lines.items():
            assert source[number - 1].strip().startswith(text), (path, number, text)
