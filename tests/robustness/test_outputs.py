"""Nothing lost, nothing overwritten: every command that writes a file.

Each writes to a temporary file beside its output and renames it into place
once complete. A failure (damaged input, Ctrl-C, a full disk) leaves an
existing output exactly as it was and no temporary file behind; a path the
command never opened is never deleted; an output that is one of the inputs
(the same path, a symbolic or a hard link) is refused before anything is
written; a directory, a missing directory or a read-only file is refused.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from pathlib import Path

import pytest

from lifecycle_trace.cli import main
from lifecycle_trace.log import iter_jsonl
from minivllm import LLMEngine

OLD = b"what was there before\n"

# Commands that read a log and write a file: argv for (input, output).
READ_AND_WRITE: dict[str, Callable[[Path, Path], list[str]]] = {
    "slice": lambda i, o: ["slice", str(i), "--requests", "r0", "r2", "-o", str(o)],
    "slice --steps": lambda i, o: ["slice", str(i), "--steps", "2:9", "-o", str(o)],
    "merge": lambda i, o: ["merge", str(i), "-o", str(o)],
    "export chrome": lambda i, o: ["export", str(i), "--format", "chrome", "-o", str(o)],
    "export otel": lambda i, o: ["export", str(i), "--format", "otel", "-o", str(o)],
    "export prometheus": lambda i, o: ["export", str(i), "--format", "prometheus", "-o", str(o)],
    "plot svg": lambda i, o: ["plot", str(i), "-o", str(o.with_suffix(".svg"))],
    "plot html": lambda i, o: ["plot", str(i), "-o", str(o.with_suffix(".html"))],
}

# Commands that write a file without reading one.
WRITE_ONLY: dict[str, Callable[[Path], list[str]]] = {
    "run": lambda o: ["run", "hello", "there", "--max-tokens", "4", "-o", str(o)],
    "demo --log": lambda o: ["demo", "--log", str(o)],
}


def _target(name: str, path: Path) -> Path:
    if name.startswith("plot"):
        return path.with_suffix("." + name.split()[-1])
    return path


def _leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.endswith(".partial"))


@pytest.mark.parametrize("name", sorted(READ_AND_WRITE))
def test_a_failing_command_leaves_the_old_output_as_it_was(
    name: str, damaged_log: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = _target(name, tmp_path / "out.data")
    out.write_bytes(OLD)
    os.chmod(out, 0o640)
    assert main(READ_AND_WRITE[name](damaged_log, out)) == 3
    assert out.read_bytes() == OLD
    assert stat.S_IMODE(out.stat().st_mode) == 0o640
    assert _leftovers(tmp_path) == []
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert f"{damaged_log}:" in err  # names the damaged file (and line)


@pytest.mark.parametrize("name", sorted(READ_AND_WRITE))
def test_a_successful_command_replaces_the_output_keeping_its_mode(
    name: str, good_log: Path, tmp_path: Path
) -> None:
    out = _target(name, tmp_path / "out.data")
    out.write_bytes(OLD)
    os.chmod(out, 0o640)
    assert main(READ_AND_WRITE[name](good_log, out)) == 0
    assert out.read_bytes() not in (OLD, b"")
    assert stat.S_IMODE(out.stat().st_mode) == 0o640
    assert _leftovers(tmp_path) == []


@pytest.mark.parametrize("link", ["same path", "symbolic link", "hard link", "relative path"])
@pytest.mark.parametrize("name", sorted(READ_AND_WRITE))
def test_an_output_that_is_the_input_is_refused(
    name: str, link: str, good_log: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = _target(name, good_log) if name.startswith("plot") else good_log
    if log != good_log:
        good_log.rename(log)
    before = log.read_bytes()
    out = tmp_path / ("alias" + log.suffix)
    if link == "same path":
        out = log
    elif link == "symbolic link":
        out.symlink_to(log)
    elif link == "hard link":
        os.link(log, out)
    else:
        monkeypatch.chdir(tmp_path)
        out = Path(".") / "sub" / ".." / log.name
        (tmp_path / "sub").mkdir()
    argv = READ_AND_WRITE[name](log, out)
    if name.startswith("plot"):  # keep the output path as given, not re-suffixed
        argv[argv.index("-o") + 1] = str(out)
    assert main(argv) == 2
    assert log.read_bytes() == before
    assert _leftovers(tmp_path) == []


@pytest.mark.parametrize("name", sorted(READ_AND_WRITE) + sorted(WRITE_ONLY))
def test_unwritable_outputs_are_refused_with_one_line(
    name: str, good_log: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    def argv(out: Path) -> list[str]:
        if name in WRITE_ONLY:
            return WRITE_ONLY[name](out)
        args = READ_AND_WRITE[name](good_log, out)
        args[args.index("-o") + 1] = str(out)
        return args

    suffix = _target(name, tmp_path / "x.jsonl").suffix
    directory = tmp_path / f"a directory{suffix}"
    directory.mkdir()
    read_only = tmp_path / f"read-only{suffix}"
    read_only.write_bytes(OLD)
    read_only.chmod(0o444)
    for out, says in [
        (directory, "is a directory"),
        (tmp_path / "missing" / f"x{suffix}", "does not exist"),
        (read_only, "read-only"),
    ]:
        assert main(argv(out)) == 3, out
        err = capsys.readouterr().err
        assert says in err and err.count("\n") == 1, err
    assert directory.is_dir() and list(directory.iterdir()) == []
    assert read_only.read_bytes() == OLD
    assert _leftovers(tmp_path) == []


@pytest.mark.parametrize("name", sorted(WRITE_ONLY))
def test_ctrl_c_leaves_the_old_output_and_says_so_in_one_line(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out.jsonl"
    out.write_bytes(OLD)
    real_step = LLMEngine.step
    calls = [0]

    def interrupted(self: LLMEngine) -> object:
        calls[0] += 1
        if calls[0] == 3:
            raise KeyboardInterrupt
        return real_step(self)

    monkeypatch.setattr(LLMEngine, "step", interrupted)
    assert main(WRITE_ONLY[name](out)) == 130
    assert out.read_bytes() == OLD
    assert _leftovers(tmp_path) == []
    assert capsys.readouterr().err == "lifecycle-trace: interrupted\n"


def test_run_on_a_full_disk_stops_at_once(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full here")
    steps = [0]
    real_step = LLMEngine.step

    def counted(self: LLMEngine) -> object:
        steps[0] += 1
        return real_step(self)

    monkeypatch.setattr(LLMEngine, "step", counted)
    # A 64 KiB write buffer: the first step's lines are only written when it is flushed.
    prompts = [f"prompt {i}" for i in range(50)]
    assert main(["run", *prompts, "--max-tokens", "200", "-o", "/dev/full"]) == 3
    err = capsys.readouterr().err
    assert "No space left on device" in err and err.count("\n") == 1
    assert steps[0] == 1
    assert stat.S_ISCHR(os.stat("/dev/full").st_mode)


def test_a_failed_merge_never_deletes_a_path_it_did_not_open(
    damaged_log: Path, tmp_path: Path
) -> None:
    if os.geteuid() != 0:
        pytest.skip("making a device node needs root")
    node = tmp_path / "null"
    os.mknod(node, 0o666 | stat.S_IFCHR, os.makedev(1, 3))  # a /dev/null of our own
    assert main(["merge", str(damaged_log), "-o", str(node)]) == 3
    assert stat.S_ISCHR(os.stat(node).st_mode)
    missing_input = tmp_path / "nope.jsonl"
    existing = tmp_path / "keep.jsonl"
    existing.write_bytes(OLD)
    assert main(["merge", str(missing_input), "-o", str(existing)]) == 3
    assert existing.read_bytes() == OLD


def test_a_symbolic_link_as_the_output_stays_a_link(good_log: Path, tmp_path: Path) -> None:
    real = tmp_path / "real.jsonl"
    real.write_bytes(OLD)
    link = tmp_path / "link.jsonl"
    link.symlink_to(real)
    assert main(["slice", str(good_log), "--requests", "r0", "-o", str(link)]) == 0
    assert link.is_symlink()
    assert [e.request_id for e in iter_jsonl(real) if hasattr(e, "request_id")][:1] == ["r0"]


def test_a_new_output_gets_the_usual_permissions(good_log: Path, tmp_path: Path) -> None:
    umask = os.umask(0o022)
    try:
        out = tmp_path / "new.json"
        assert main(["export", str(good_log), "--format", "chrome", "-o", str(out)]) == 0
    finally:
        os.umask(umask)
    assert stat.S_IMODE(out.stat().st_mode) == 0o644
