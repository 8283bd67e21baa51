"""Chrome Trace Event (Perfetto) JSON from an event log.

The trace opens in ui.perfetto.dev and chrome://tracing. Layout:

- one process, named after the engine; thread 0 is the engine's steps (one
  ``X`` slice per step), then one thread per request, named by its id and
  sorted by arrival;
- on a request's thread, one ``X`` slice per status interval (WAITING,
  RUNNING, PREEMPTED), which never overlap, and an instant event at its
  finish naming the reason;
- counter tracks: each request's ``num_computed_tokens``, the running and
  waiting counts (updated at every status change), and the KV blocks in use
  (as the block pool reports at the end of each step).

Timestamps are microseconds since the log's first event, on the event clock
(``ts_ns``); the first event's raw ``ts_ns`` is kept in ``otherData``.

The trace is built in one pass: :class:`ChromeTraceStream` yields the trace
events as the log's events complete them (a row is named when its request
arrives, its slices written when it finishes), holding only live requests;
:func:`write_chrome_trace` writes them to a file as they come, and
:func:`chrome_trace` collects them into one object.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, TextIO

import orjson

from lifecycle_trace.export.intervals import IntervalFold, RequestIntervals
from minivllm.events import (
    CounterUpdated,
    EngineConfigured,
    Event,
    RequestAdded,
    StatusChanged,
    StepFinished,
    StepStarted,
)
from minivllm.request import RequestStatus

__all__ = [
    "DISPLAY_TIME_UNIT",
    "ENGINE_TID",
    "PID",
    "STATUS_COLORS",
    "ChromeTraceStream",
    "chrome_trace",
    "write_chrome_trace",
]

PID = 1
"""The one process id of the trace."""

ENGINE_TID = 0
"""Thread id of the engine-steps row; requests get 1, 2, ... in order of arrival."""

STATUS_COLORS: Mapping[RequestStatus, str] = {
    RequestStatus.WAITING: "thread_state_runnable",
    RequestStatus.RUNNING: "thread_state_running",
    RequestStatus.PREEMPTED: "terrible",
}
"""chrome://tracing's reserved colour names per status (Perfetto picks its own colours)."""

DISPLAY_TIME_UNIT = "ns"
"""The unit viewers show times in (the trace's own timestamps are microseconds)."""

_RUNNING = RequestStatus.RUNNING
_BATCH = 1024


def _us(ns: int, origin: int) -> float:
    return (ns - origin) / 1000


def _meta(name: str, tid: int, args: dict[str, Any]) -> dict[str, Any]:
    return {"ph": "M", "name": name, "pid": PID, "tid": tid, "args": args}


def _thread(tid: int, name: str) -> list[dict[str, Any]]:
    return [
        _meta("thread_name", tid, {"name": name}),
        _meta("thread_sort_index", tid, {"sort_index": tid}),
    ]


def _request_slices(r: RequestIntervals, tid: int, origin: int) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for iv in r.intervals:
        start = _us(iv.start_ns, origin)
        out.append(
            {
                "ph": "X",
                "name": iv.status.name,
                "cat": "status",
                "pid": PID,
                "tid": tid,
                "ts": start,
                "dur": iv.duration_ns / 1000,
                "cname": STATUS_COLORS.get(iv.status, "generic_work"),
                "args": {
                    "request_id": r.request_id,
                    "first_step": iv.first_step,
                    "last_step": iv.last_step,
                    "log_ended": iv.open_end,
                },
            }
        )
    f = r.finish
    if f is not None:
        out.append(
            {
                "ph": "i",
                "s": "t",
                "name": f"finished: {f.reason}",
                "cat": "finish",
                "pid": PID,
                "tid": tid,
                "ts": _us(f.ts_ns, origin),
                "args": {
                    "request_id": r.request_id,
                    "status": f.status.name,
                    "finish_reason": f.reason,
                    "stop_reason": f.stop_reason,
                    "step": f.step,
                    "num_output_tokens": f.num_output_tokens,
                },
            }
        )
    return out


def _counter(name: str, ts: float, args: dict[str, int]) -> dict[str, Any]:
    return {"ph": "C", "name": name, "pid": PID, "tid": ENGINE_TID, "ts": ts, "args": args}


def _step_slice(started: StepStarted, finished: StepFinished, origin: int) -> dict[str, Any]:
    start = _us(started.ts_ns, origin)
    return {
        "ph": "X",
        "name": f"step {finished.step}",
        "cat": "step",
        "pid": PID,
        "tid": ENGINE_TID,
        "ts": start,
        "dur": (finished.ts_ns - started.ts_ns) / 1000,
        "args": {
            "num_scheduled_tokens": dict(finished.num_scheduled_tokens),
            "preempted": list(finished.preempted_req_ids),
            "finished": list(finished.finished_req_ids),
        },
    }


class _Trace:
    """The trace's fold: each event in, the trace events it completes out, in log order.

    A request's row is named when it arrives; its status slices and finish
    mark are written when it finishes (or, for requests still live, at
    :meth:`close`), so only live requests are held. Counters are written as
    their events come, hence in time order.
    """

    def __init__(self, origin: int) -> None:
        self.origin = origin
        self.first_seq: int | None = None
        self.last_seq = 0
        self.num_events = 0
        self._named = False
        self._tids: dict[str, int] = {}
        self._next_tid = ENGINE_TID + 1
        self._finished: list[RequestIntervals] = []
        self._intervals = IntervalFold(on_finish=self._finished.append)
        self._running = 0
        self._waiting = 0
        self._started: StepStarted | None = None

    def feed(self, e: Event) -> list[dict[str, Any]]:
        """The trace events that ``e`` completes."""
        if self.first_seq is None:
            self.first_seq = e.seq
        self.last_seq = e.seq
        out: list[dict[str, Any]] = []
        if not self._named:
            # The process is named after the engine when the log starts with its configuration.
            engine = f"minivllm {e.engine_id}" if isinstance(e, EngineConfigured) else "minivllm"
            out.append(_meta("process_name", ENGINE_TID, {"name": engine}))
            out.extend(_thread(ENGINE_TID, "engine steps"))
            self._named = True
        self._intervals.feed(e)
        origin = self.origin
        ts = _us(e.ts_ns, origin)
        if isinstance(e, CounterUpdated):
            if e.counter == "num_computed_tokens":
                out.append(_counter(f"request {e.request_id}", ts, {"num_computed_tokens": e.new}))
        elif isinstance(e, RequestAdded):
            tid = self._tids[e.request_id] = self._next_tid
            self._next_tid += 1
            out.extend(_thread(tid, e.request_id))
            self._waiting += 1
            out.append(_counter(f"request {e.request_id}", ts, {"num_computed_tokens": 0}))
            out.append(self._requests(ts))
        elif isinstance(e, StatusChanged):
            # A preempted request waits in the waiting queue, as in vLLM.
            if e.old_status == _RUNNING:
                self._running -= 1
            else:
                self._waiting -= 1
            if e.new_status == _RUNNING:
                self._running += 1
            elif not RequestStatus.is_finished(e.new_status):
                self._waiting += 1
            out.append(self._requests(ts))
            for r in self._finished:
                out.extend(_request_slices(r, self._tids.pop(r.request_id), origin))
            self._finished.clear()
        elif isinstance(e, StepStarted):
            self._started = e
        elif isinstance(e, StepFinished):
            started = self._started
            if started is not None and started.step == e.step:
                out.append(_step_slice(started, e, origin))
            out.append(_counter("kv_cache", ts, {"blocks_in_use": e.num_used_blocks}))
        elif isinstance(e, EngineConfigured) and self.num_events:
            out.append(_meta("process_name", ENGINE_TID, {"name": f"minivllm {e.engine_id}"}))
        self.num_events += 1
        return out

    def _requests(self, ts: float) -> dict[str, Any]:
        return _counter("requests", ts, {"running": self._running, "waiting": self._waiting})

    def close(self) -> list[dict[str, Any]]:
        """The slices of the requests still live when the log ended."""
        out: list[dict[str, Any]] = []
        for r in self._intervals.close():
            out.extend(_request_slices(r, self._tids.pop(r.request_id), self.origin))
        return out

    def other_data(self) -> dict[str, Any]:
        """The trace's ``otherData``: where its clock starts and which events it covers."""
        return {
            "source": "lifecycle_trace",
            "clock_origin_ns": self.origin,
            "first_seq": self.first_seq,
            "last_seq": self.last_seq,
        }


class ChromeTraceStream:
    """A log's Chrome trace, one trace event at a time, holding only the live requests.

    Iterate it for the elements of ``traceEvents``; once the iteration is
    over, :meth:`other_data` gives the trace's ``otherData``. The log's
    first event fixes the clock origin, so an empty log is a ``ValueError``.
    """

    def __init__(self, events: Iterable[Event]) -> None:
        self._events = iter(events)
        self._trace: _Trace | None = None
        self.num_trace_events = 0

    def __iter__(self) -> Iterator[dict[str, Any]]:
        if self._trace is not None:
            raise RuntimeError("a ChromeTraceStream is iterated once")
        first = next(self._events, None)
        if first is None:
            raise ValueError("the event log is empty: there is nothing to trace")
        trace = self._trace = _Trace(first.ts_ns)
        count = 0
        for e in itertools.chain((first,), self._events):
            out = trace.feed(e)
            count += len(out)
            yield from out
        out = trace.close()
        self.num_trace_events = count + len(out)
        yield from out

    @property
    def num_events(self) -> int:
        """Log events read so far."""
        return 0 if self._trace is None else self._trace.num_events

    def other_data(self) -> dict[str, Any]:
        """The trace's ``otherData`` (after the iteration)."""
        if self._trace is None:
            raise RuntimeError("the trace has not been read yet")
        return self._trace.other_data()


def chrome_trace(events: Iterable[Event]) -> dict[str, Any]:
    """The Chrome Trace Event JSON object (``traceEvents`` plus metadata) for a log."""
    stream = ChromeTraceStream(events)
    trace_events = list(stream)
    return {
        "traceEvents": trace_events,
        "displayTimeUnit": DISPLAY_TIME_UNIT,
        "otherData": stream.other_data(),
    }


def write_chrome_trace(events: Iterable[Event], out: str | os.PathLike[str] | TextIO) -> int:
    """Write the trace of ``events`` as JSON as it is built, to a path or text stream.

    Returns the number of trace events. The JSON is the same object
    :func:`chrome_trace` returns, written element by element.
    """
    if not isinstance(out, str | os.PathLike):
        return _write(ChromeTraceStream(events), out)
    with open(out, "w", encoding="utf-8") as f:
        return _write(ChromeTraceStream(events), f)


def _write(stream: ChromeTraceStream, f: TextIO) -> int:
    dumps = orjson.dumps
    f.write('{"traceEvents":[')
    separator = ""
    # Encoded a batch at a time: one call per trace event would cost more, and
    # orjson gives each result a buffer of several KiB.
    batch: list[dict[str, Any]] = []
    for element in stream:
        batch.append(element)
        if len(batch) >= _BATCH:
            f.write(separator + dumps(batch)[1:-1].decode())
            separator = ","
            batch.clear()
    if batch:
        f.write(separator + dumps(batch)[1:-1].decode())
    tail = {"displayTimeUnit": DISPLAY_TIME_UNIT, "otherData": stream.other_data()}
    f.write("]," + dumps(tail).decode()[1:] + "\n")
    return stream.num_trace_events
