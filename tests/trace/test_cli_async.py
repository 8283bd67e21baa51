"""The lifecycle-trace command under async scheduling and the priority policy."""

from __future__ import annotations

from pathlib import Path

import pytest

from lifecycle_trace.cli import main
from lifecycle_trace.cli._demo import ASYNC_NOTE
from lifecycle_trace.cli._demo import DEMO_PRIORITIES
from lifecycle_trace.cli._demo import PRIORITY_NOTE
from lifecycle_trace.cli._demo import demo_workload
from lifecycle_trace.cli._render import IN_FLIGHT_LABEL
from lifecycle_trace.cli._render import IN_FLIGHT_LEGEND
from lifecycle_trace.fold.timeline import build_timelines
from lifecycle_trace.store import read_jsonl


def _rows(out: str) -> dict[str, tuple[str, str]]:
    """Each request's chart row and the in-flight row under it (one chart block)."""
    lines = out.splitlines()
    rows = {}
    for i, line in enumerate(lines):
        if lines[i + 1 : i + 2] and lines[i + 1].startswith(IN_FLIGHT_LABEL):
            name = line.split()[0]
            width = len(IN_FLIGHT_LABEL) + 2
            rows[name] = (line[width:], lines[i + 1][width:])
    return rows


def test_demo_async_shows_the_batches_in_flight(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = tmp_path / "demo.jsonl"
    assert main(["demo", "--async", "--log", str(log)]) == 0
    out = capsys.readouterr().out
    assert "async scheduling" in out.splitlines()[1]
    assert ASYNC_NOTE in out and IN_FLIGHT_LEGEND in out
    timelines = build_timelines(read_jsonl(log).events)
    rows = _rows(out)
    assert set(rows) == set(timelines)
    for rid, t in timelines.items():
        _, flight = rows[rid]
        steps = tuple(step for step, cell in enumerate(flight) if cell != " ")
        assert steps == t.in_flight_steps, rid
        assert all(flight[s] == str(t.state_at(s).num_output_placeholders) for s in steps)  # type: ignore[union-attr]
    # r0: prefill scheduled at step 0, its token one step later; the table says so too.
    assert "r0: scheduled at once (step 0); prefill scheduled at step 0, its first token " in out
    header = next(line for line in out.splitlines() if line.startswith("request "))
    assert header.split()[5:7] == ["prefill@", "token@"]
    r0 = next(line for line in out.splitlines() if line.startswith("r0 ") and "length" in line)
    assert r0.split()[5:7] == ["0", "1"]


def test_demo_without_async_has_no_in_flight_rows(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo"]) == 0
    out = capsys.readouterr().out
    assert IN_FLIGHT_LABEL not in out and "token@" not in out and ASYNC_NOTE not in out


def test_demo_priority_lists_the_priorities(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--policy", "priority"]) == 0
    out = capsys.readouterr().out
    assert "priority policy" in out.splitlines()[1] and PRIORITY_NOTE in out
    for rid, priority in DEMO_PRIORITIES.items():
        assert f"  {rid}: prompt" in out and f", priority {priority}" in out
    header = next(line for line in out.splitlines() if line.startswith("request "))
    assert header.split()[:2] == ["request", "prio"]
    table = {line.split()[0]: line.split() for line in out.splitlines() if line[:1] == "r"}
    assert {rid: int(table[rid][1]) for rid in DEMO_PRIORITIES} == DEMO_PRIORITIES
    # r1 (priority 2) is the victim, though r2 was admitted after it.
    assert (
        "r1: scheduled at once (step 0); prompt prefilled in chunks 20+30; first token at " in out
    )
    r1 = next(line for line in out.splitlines() if line.startswith("  r1: scheduled"))
    assert "preempted at step 5" in r1


def test_the_demo_workload_takes_the_modes() -> None:
    w = demo_workload(async_scheduling=True, policy="priority")
    assert (w.engine_kwargs["async_scheduling"], w.engine_kwargs["policy"]) == (True, "priority")
    assert {r.id: r.priority for r in w.requests} == DEMO_PRIORITIES
    assert {r.priority for r in demo_workload().requests} == {0}


def test_lab_async_prints_the_placeholders_and_the_relation(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["lab", "Hello, minivllm!", "--max-tokens", "6", "--async"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0].endswith("(16 tokens), async scheduling")
    assert lines[1].split()[-1] == "num_output_placeholders"
    records = [line.split() for line in lines[3:10]]
    # Between steps computed == tokens (+1 placeholder - 1) until the last token lands.
    assert [r[3:] for r in records[:6]] == [[str(16 + i), str(16 + i), "1"] for i in range(6)]
    assert records[6][2:] == ["FINISHED_LENGTH_CAPPED", "21", "22", "0"]
    assert "prefill done (num_computed_tokens >= 16) at step: 0" in out
    assert "first token sampled (num_tokens > 16) at step: 1" in out
    assert "growth of num_computed_tokens per step after that: [1, 1, 1, 1, 1, 0]" in out
    assert "num_computed_tokens - num_tokens after each step: [0, 0, 0, 0, 0, 0, -1]" in out


def test_lab_without_async_samples_the_first_token_in_the_prefill_step(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["lab", "Hello, minivllm!", "--max-tokens", "6"]) == 0
    out = capsys.readouterr().out
    assert "num_output_placeholders" not in out.splitlines()[1]
    assert "first token sampled (num_tokens > 16) at step: 0" in out
    assert "num_computed_tokens - num_tokens" not in out


def test_run_async_then_show_prints_the_in_flight_rows(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = tmp_path / "run.jsonl"
    argv = ["run", "Hello, minivllm!", "The KV cache is paged.", "-o", str(log), "--async"]
    assert main([*argv, "--max-tokens", "4", "--priority", "1", "--priority", "0"]) == 0
    capsys.readouterr()
    assert main(["show", str(log)]) == 0
    rows = _rows(capsys.readouterr().out)
    # Each decodes for three steps after its prefill step, a batch in flight at each step end.
    assert rows["0"] == ("RRRRL", "1111")
    assert rows["1"] == ("RRRRL", "1111")


def test_run_wants_one_priority_per_prompt(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["run", "a", "b", "-o", str(tmp_path / "x.jsonl"), "--priority", "1"]
    assert main(argv) == 2
    assert "--priority: got 1 for 2 prompts" in capsys.readouterr().err
    assert not (tmp_path / "x.jsonl").exists()
