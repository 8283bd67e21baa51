"""Both command lines, driven with generated arguments and generated files: never a traceback.

Each example picks a command of ``lifecycle-trace`` or ``minivllm``, fills
its arguments from the parser itself (every option, with values of the right
and the wrong kind: huge, negative, not numbers, control characters) and
points its paths at generated files: whole logs, logs damaged in one of many
ways, random bytes, empty files, directories, missing paths, ``/dev/null``,
``/dev/full``, a read-only file, the input itself as the output. ``main``
runs in-process. Whatever happens:

- the exit status is 0, 1, 2 or 3 (never 4, an internal error, nor anything
  else), and stderr holds no traceback and at most one error line;
- no input file is changed and no temporary file is left behind.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import tempfile
from collections.abc import Callable
from collections.abc import Sequence
from functools import cache
from pathlib import Path
from types import ModuleType
from unittest import mock

from hypothesis import HealthCheck
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

import lifecycle_trace.cli as trace_cli
import minivllm.cli as minivllm_cli
from helpers.export import run_workload_logged
from lifecycle_trace.cli._demo import demo_workload
from lifecycle_trace.log import EventLog
from lifecycle_trace.log import write_jsonl
from lifecycle_trace.log.merge import merge_logs
from minivllm import LLMEngine
from minivllm import SamplingParams
from minivllm.cli_errors import EXIT_INTERNAL

DATA = Path(__file__).parent.parent / "data"
DOCUMENTED = {0, 1, 2, 3}

# Values an option can get, by kind. Engine sizes never take a valid but huge
# value that would make a run long: the invalid ones are refused at once.
# (Valid values first: hypothesis leans to the first of a choice.)
INTS = st.sampled_from(
    ["16", "3", "1", "0", "-1", "2", "8", "64", str(2**63), str(2**64), str(10**30), "1e3", "x"]
) | st.integers(-3, 300).map(str)
SIZES = st.sampled_from(["16", "64", "200", "2", "1", "0", "-1", str(2**64), "abc"])
FLOATS = st.sampled_from(["1", "0.5", "0", "-1", "1.5", "nan", "inf", "-inf", "1e400", "x"])
TEXT = st.sampled_from(["r0", "hello", "r1", "same", "engine-0", "a\x1b[31m", "é", ""]) | st.text(
    max_size=12
)
BOUNDED = {"max_model_len", "block_size", "max_num_seqs", "max_num_batched_tokens"}


@cache
def _whole_logs() -> dict[str, bytes]:
    """Whole logs of several kinds, as bytes: demo, async and priority, a reused id, merged."""
    with tempfile.TemporaryDirectory() as tmp:
        out: dict[str, bytes] = {}
        for name, events in [
            ("demo", run_workload_logged(demo_workload())),
            ("async", run_workload_logged(demo_workload(async_scheduling=True, policy="priority"))),
        ]:
            path = Path(tmp, f"{name}.jsonl")
            write_jsonl(events, path)
            out[name] = path.read_bytes()
        log = EventLog()
        engine = LLMEngine(observers=[log], max_model_len=64, engine_id="other")
        for i in range(2):
            engine.add_request([65 + i] * 3, SamplingParams(max_tokens=2), request_id="same")
            while engine.has_unfinished_requests():
                engine.step()
        path = Path(tmp, "reused.jsonl")
        write_jsonl(log, path)
        out["reused"] = path.read_bytes()
        merged = Path(tmp, "merged.jsonl")
        merge_logs([Path(tmp, "demo.jsonl"), path], merged)
        out["merged"] = merged.read_bytes()
        return out


JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False)
    | st.text(max_size=6),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=6,
)


@st.composite
def damaged_log(draw: st.DrawFn) -> bytes:
    """A whole log with one to three kinds of damage."""
    lines = draw(st.sampled_from(sorted(_whole_logs().values()))).split(b"\n")[:-1]
    for _ in range(draw(st.integers(1, 3))):
        if not lines:
            break
        i = draw(st.integers(0, len(lines) - 1))
        how = draw(
            st.sampled_from(
                [
                    "value",
                    "drop key",
                    "add key",
                    "type",
                    "version",
                    "delete",
                    "duplicate",
                    "swap",
                    "cut",
                    "garbage",
                    "json",
                    "truncate file",
                ]
            )
        )
        try:
            record = json.loads(lines[i])
        except ValueError:
            record = None
        if how in ("value", "drop key", "add key", "type", "version") and isinstance(record, dict):
            key = draw(st.sampled_from(sorted(record)))
            if how == "value":
                record[key] = draw(JSON_VALUES)
            elif how == "drop key":
                del record[key]
            elif how == "add key":
                record[draw(st.text(max_size=5))] = draw(JSON_VALUES)
            elif how == "type":
                record["type"] = draw(st.sampled_from(["nope", "step_finished", "request_added"]))
            else:
                record["v"] = draw(st.sampled_from([0, 3, 99, "2", None]))
            lines[i] = json.dumps(record).encode()
        elif how == "delete":
            del lines[i]
        elif how == "duplicate":
            lines.insert(i, lines[i])
        elif how == "swap" and i + 1 < len(lines):
            lines[i], lines[i + 1] = lines[i + 1], lines[i]
        elif how == "cut":
            lines[i] = lines[i][: draw(st.integers(0, len(lines[i])))]
        elif how == "garbage":
            lines.insert(i, draw(st.binary(max_size=20)))
        elif how == "json":
            lines.insert(i, json.dumps(draw(JSON_VALUES)).encode())
        else:
            lines = lines[: i + 1]
    data = b"\n".join(lines) + draw(st.sampled_from([b"\n", b""]))
    if draw(st.integers(0, 9)) == 0:
        data = b"\xef\xbb\xbf" + data  # a byte-order mark
    if draw(st.integers(0, 9)) == 0:
        data = data.replace(b"\n", b"\r\n")
    return data


def _workload_bytes() -> list[bytes]:
    return [(DATA / "vllm_examples" / f"{n}.json").read_bytes() for n in "ab"]


FILE_CONTENTS = st.one_of(
    st.builds(lambda: None).flatmap(lambda _: st.sampled_from(sorted(_whole_logs().values()))),
    damaged_log(),
    st.just(b""),
    st.binary(max_size=200),
    st.lists(JSON_VALUES, max_size=4).map(
        lambda vs: b"\n".join(json.dumps(v).encode() for v in vs)
    ),
    st.sampled_from(_workload_bytes()),
)


class Files:
    """The paths an example may use: generated inputs, and places to write."""

    def __init__(self, root: Path, contents: list[bytes]) -> None:
        self.root = root
        self.inputs = []
        for i, data in enumerate(contents):
            path = root / f"in{i}.jsonl"
            path.write_bytes(data)
            self.inputs.append(path)
        (root / "a directory").mkdir()
        read_only = root / "read-only.jsonl"
        read_only.write_bytes(b"keep\n")
        read_only.chmod(0o444)
        self.protected = [*self.inputs, read_only]
        self.before = {p: p.read_bytes() for p in self.protected}
        self.inputs_pool = [
            *map(str, self.inputs),
            str(root / "missing.jsonl"),
            str(root / "a directory"),
            os.devnull,
            str(read_only),
        ]
        self.outputs_pool = [
            str(root / "out.jsonl"),
            str(root / "out.svg"),
            str(root / "out.html"),
            str(root / "out"),
            str(root / "no such dir" / "out.jsonl"),
            str(root / "a directory"),
            str(read_only),
            os.devnull,
            *(["/dev/full"] if os.path.exists("/dev/full") else []),
            *map(str, self.inputs),
        ]


def _value(draw: st.DrawFn, action: argparse.Action, files: Files, command: str) -> str:
    dest = action.dest
    if dest == "output" and command == "plot" and draw(st.booleans()):
        return draw(st.sampled_from([str(files.root / "out.svg"), str(files.root / "out.html")]))
    if action.choices is not None:
        return draw(st.sampled_from([*map(str, action.choices), "nope"]))
    if dest in ("output", "log") and action.option_strings:
        return draw(st.sampled_from(files.outputs_pool))
    if dest in ("log", "logs", "log_a", "log_b", "workload"):
        return draw(st.sampled_from(files.inputs_pool))
    if action.type is Path:
        return draw(st.sampled_from(files.inputs_pool + files.outputs_pool))
    if action.type is int:
        return draw(SIZES if dest in BOUNDED else INTS)
    if action.type is float:
        return draw(FLOATS)
    if dest == "model":
        return draw(st.sampled_from(["dummy", "nope", "missing.npz", "", "tiny.txt"]))
    if dest == "steps":
        return draw(st.sampled_from(["2:9", "0:", ":3", "9", "a:b", "5:2", "-1:4", ""]))
    if dest == "engine_id":
        return draw(st.sampled_from(["engine-0", "other", ""]))
    return draw(TEXT)


@st.composite
def argv_for(draw: st.DrawFn, parser: argparse.ArgumentParser, files: Files) -> list[str]:
    """Arguments for one of ``parser``'s commands, from its own actions; now and then nonsense."""
    if draw(st.integers(0, 19)) == 19:
        return draw(st.lists(st.text(max_size=8) | st.sampled_from(["-o", "--", "-h"]), max_size=4))
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    name = draw(st.sampled_from(sorted(sub.choices)))
    command = sub.choices[name]
    argv = [name]
    for action in command._actions:
        if isinstance(action, argparse._HelpAction | argparse._VersionAction):
            continue
        required = action.required or not action.option_strings
        if not required and draw(st.integers(0, 3)) < 3:
            continue
        if required and action.option_strings and draw(st.integers(0, 14)) == 14:
            continue  # a required option left out
        flag = [draw(st.sampled_from(action.option_strings))] if action.option_strings else []
        if action.nargs == 0:
            argv += flag
            continue
        many = action.nargs in ("+", "*") or isinstance(action, argparse._AppendAction)
        count = draw(st.integers(1, 3)) if many else 1
        if action.nargs == "*" and draw(st.integers(0, 9)) == 9:
            count = 0
        if isinstance(action, argparse._AppendAction):
            for _ in range(count):
                argv += [*flag, _value(draw, action, files, name)]
        else:
            argv += [*flag, *(_value(draw, action, files, name) for _ in range(count))]
    return argv


def _digest(root: Path) -> set[str]:
    return {p.name for p in root.rglob("*") if p.name.endswith(".partial")}


def _run(main: Callable[[Sequence[str]], int], argv: list[str]) -> tuple[int, str]:
    out, err = io.StringIO(), io.StringIO()
    with (
        contextlib.redirect_stdout(out),
        contextlib.redirect_stderr(err),
        mock.patch.dict(os.environ, {"OTEL_TRACES_EXPORTER": "none", "OTEL_SDK_DISABLED": "true"}),
    ):
        status = main(argv)
    return status, err.getvalue()


def _written(argv: list[str]) -> set[Path]:
    """The files a command may replace: those its output options name, unless it reads them too."""
    outputs = {i + 1 for i, arg in enumerate(argv[:-1]) if arg in ("-o", "--output", "--log")}
    read = {arg for i, arg in enumerate(argv) if i not in outputs}
    if argv and argv[0] in ("show", "check", "stats"):
        return set()  # --log is not an option of these; their paths are all inputs
    return {Path(argv[i]) for i in outputs if argv[i] not in read}


def _check(prog: str, status: int, err: str, files: Files, argv: list[str]) -> None:
    assert status in DOCUMENTED, f"exit {status} for {argv!r}: {err}"
    assert status != EXIT_INTERNAL
    assert "Traceback" not in err and '  File "' not in err, f"{argv!r}: {err}"
    errors = [line for line in err.splitlines() if line.startswith(f"{prog}: error")]
    assert len(errors) <= 1, f"{argv!r}: {err}"
    assert "internal error" not in err, f"{argv!r}: {err}"
    written = _written(argv)
    for path, data in files.before.items():
        assert path in written or path.read_bytes() == data, f"{argv!r} changed {path.name}"
    assert not _digest(files.root), f"{argv!r} left {_digest(files.root)}"


SETTINGS = settings(
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large], deadline=None
)


def _run_drawn(cli: ModuleType, prog: str, contents: list[bytes], data: st.DataObject) -> None:
    """Run ``cli`` on arguments drawn for its parser, over files of ``contents``; check the run."""
    with tempfile.TemporaryDirectory() as tmp:
        files = Files(Path(tmp), contents)
        argv = data.draw(argv_for(cli.build_parser(), files), label="argv")
        status, err = _run(cli.main, argv)
        _check(prog, status, err, files, argv)
        Path(tmp, "read-only.jsonl").chmod(0o644)


@SETTINGS
@given(contents=st.lists(FILE_CONTENTS, min_size=1, max_size=3), data=st.data())
def test_lifecycle_trace_never_shows_a_traceback(
    contents: list[bytes], data: st.DataObject
) -> None:
    _run_drawn(trace_cli, "lifecycle-trace", contents, data)


@SETTINGS
@given(contents=st.lists(FILE_CONTENTS, min_size=1, max_size=2), data=st.data())
def test_minivllm_never_shows_a_traceback(contents: list[bytes], data: st.DataObject) -> None:
    _run_drawn(minivllm_cli, "minivllm", contents, data)
