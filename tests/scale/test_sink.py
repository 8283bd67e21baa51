"""The streaming sink: every event on disk, flushed at step ends, closed at exit, memory flat."""

from __future__ import annotations

import gc
import subprocess
import sys
import tracemalloc
from pathlib import Path

import pytest

from helpers.scale import run_rolling
from lifecycle_trace import EventLog
from lifecycle_trace.reader import iter_jsonl
from lifecycle_trace.sink import JsonlWriter
from minivllm import LLMEngine
from minivllm import SamplingParams
from minivllm.events import event_to_dict


def test_sink_writes_every_event_as_the_recorder_sees_it(tmp_path: Path) -> None:
    path = tmp_path / "run.jsonl"
    log = EventLog()
    with JsonlWriter(path) as sink:
        run_rolling(200, (log, sink), abort_every=7)
    assert sink.closed and sink.num_written == len(log)
    assert [event_to_dict(e) for e in iter_jsonl(path)] == [event_to_dict(e) for e in log]


def test_each_step_is_on_disk_when_it_ends(tmp_path: Path) -> None:
    path = tmp_path / "run.jsonl"
    seen_at_step_end: list[tuple[int, int]] = []
    sink = JsonlWriter(path)

    def after_sink(event: object) -> None:
        # Subscribed after the sink, so a StepFinished is already written when this runs.
        if type(event).__name__ == "StepFinished":
            seen_at_step_end.append((sink.num_written, path.read_bytes().count(b"\n")))

    run_rolling(100, (sink, after_sink))
    assert len(seen_at_step_end) > 10
    assert all(written == on_disk for written, on_disk in seen_at_step_end)
    sink.close()


def test_an_unclosed_sink_is_complete_after_a_normal_exit(tmp_path: Path) -> None:
    path = tmp_path / "run.jsonl"
    script = (
        "import sys\n"
        "sys.path.insert(0, sys.argv[2])\n"
        "from helpers.scale import run_rolling\n"
        "from lifecycle_trace.sink import JsonlWriter\n"
        "sink = JsonlWriter(sys.argv[1])\n"
        "run_rolling(20, (sink,))\n"
        "print(sink.num_written)\n"
        "sink._flush = lambda: None  # no flush at step ends from here on\n"
        "run_rolling(5, (sink,))\n"
        "print(sink.num_written)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script, str(path), str(Path(__file__).parents[1])],
        capture_output=True,
        text=True,
        check=True,
    )
    written = int(result.stdout.split()[-1])
    assert written > int(result.stdout.split()[0])
    assert sum(1 for _ in iter_jsonl(path)) == written


def test_close_is_idempotent_and_a_stream_target_stays_open(tmp_path: Path) -> None:
    with open(tmp_path / "out.jsonl", "wb") as f:
        sink = JsonlWriter(f)
        run_rolling(3, (sink,))
        sink.close()
        sink.close()
        assert sink.closed and not f.closed
    with pytest.raises(TypeError, match="binary stream"):
        JsonlWriter(42)  # type: ignore[arg-type]


def _retained_and_peak(num_requests: int, path: Path) -> tuple[int, int]:
    """Memory kept after a run and its peak during it, over what was traced just before it.

    A full collection empties CPython's free lists (tuples and lists cached for
    reuse, bounded but refilled over a run, more in a longer one): so right
    before the measured run a warm-up refills them, and both runs start alike.
    """
    gc.collect()
    with JsonlWriter(path.with_suffix(".warm.jsonl")) as sink:
        run_rolling(2000, (sink,), uniform=True)
    base = tracemalloc.get_traced_memory()[0]
    tracemalloc.reset_peak()
    with JsonlWriter(path) as sink:
        engine = run_rolling(num_requests, (sink,), uniform=True)
        gc.collect()
        retained = tracemalloc.get_traced_memory()[0] - base
    peak = tracemalloc.get_traced_memory()[1] - base
    del engine
    return retained, peak


def test_engine_and_sink_keep_nothing_per_finished_request(tmp_path: Path) -> None:
    tracemalloc.start()
    try:
        small = _retained_and_peak(400, tmp_path / "small.jsonl")
        large = _retained_and_peak(2000, tmp_path / "large.jsonl")
    finally:
        tracemalloc.stop()
    # 1,600 more requests: even 5 bytes kept per finished request would exceed the margin.
    assert large[0] < small[0] + 8_000, (small, large)
    # A leak of 50 bytes per request would still exceed this margin.
    assert large[1] < small[1] + 80_000, (small, large)


def test_the_step_in_progress_is_written_on_close_and_on_garbage_collection(
    tmp_path: Path,
) -> None:
    for how in ("close", "collect"):
        path = tmp_path / f"{how}.jsonl"
        sink = JsonlWriter(path)
        engine = LLMEngine(observers=[sink])
        engine.add_request([1, 2, 3], SamplingParams(max_tokens=2))  # no step: all pending
        assert path.read_bytes() == b""
        emitted = engine.bus.num_emitted
        if how == "close":
            sink.close()
        else:
            del engine, sink
            gc.collect()
        assert [e.seq for e in iter_jsonl(path)] == list(range(emitted))
