"""Chrome Trace Event (Perfetto) JSON from an event log.

The trace opens in ui.perfetto.dev (check one with
:func:`lifecycle_trace.testing.chrome_check.validate_chrome_trace`). Layout:

- one process per engine, named after it (``minivllm ENGINE``; a merged log
  has several), whose one thread holds the engine's steps (one ``X`` slice
  per step) and whose counter tracks are the running and waiting counts
  (updated at every status change), the KV blocks in use (as the block pool
  reports at the end of each step) and, under async scheduling, the tokens in
  flight over the live requests (``in flight``);
- one process per request, named ``req ID`` (``ENGINE req ID`` in a merged
  log) and numbered in order of arrival, so a request's tracks are grouped
  under it: its thread holds one ``X`` slice per status interval (WAITING,
  RUNNING, PREEMPTED), which never overlap, and an instant event at its
  finish naming the reason; its counter tracks are its ``num_computed_tokens``
  (``req ID``) and, under async scheduling, its ``num_output_placeholders``
  (``req ID in flight``: tokens scheduled for it whose batch has not been
  processed yet; back to 0 when it finishes, since a token still in flight
  for it then is discarded). A request's slices carry its ``priority``.

Every process has one thread whose id is the process id, numbered from 1 in
the order the processes appear: no thread id is 0 (older Perfetto versions
merge thread 0 with another) and none is shared by two processes (Perfetto
keys threads by id).

Timestamps are microseconds since the log's first event, on the event clock
(``ts_ns``); the first event's raw ``ts_ns`` is kept in ``otherData``.

The trace is built in one pass over the fold
(:class:`~lifecycle_trace.fold.requests.RequestFold`, one per engine):
:class:`ChromeTraceStream` yields the trace events as the log's events
complete them (a row is named when its request arrives, its slices written
when it finishes), holding only live requests;
:func:`write_chrome_trace` writes them to a file as they come, and
:func:`chrome_trace` collects them into one object.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable
from collections.abc import Iterator
from collections.abc import Mapping
from typing import Any
from typing import TextIO

import orjson

from lifecycle_trace._output import open_replacing
from lifecycle_trace.fold.intervals import RequestIntervals
from lifecycle_trace.fold.intervals import intervals_of
from lifecycle_trace.fold.requests import RequestFold
from lifecycle_trace.fold.requests import RequestState
from lifecycle_trace.fold.requests import Source
from lifecycle_trace.fold.requests import engine_runs
from lifecycle_trace.fold.requests import peek_records
from minivllm.events import CounterUpdated
from minivllm.events import EngineConfigured
from minivllm.events import Event
from minivllm.events import RequestAdded
from minivllm.events import StatusChanged
from minivllm.events import StepFinished
from minivllm.events import StepStarted
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
"""The process id of the trace's first engine; requests and other engines get the next ids."""

ENGINE_TID = PID
"""Thread id of the first engine's steps row: a process's one thread has the process's id."""

STATUS_COLORS: Mapping[RequestStatus, str] = {
    RequestStatus.WAITING: "thread_state_runnable",
    RequestStatus.RUNNING: "thread_state_running",
    RequestStatus.PREEMPTED: "terrible",
}
"""The Trace Event format's reserved colour names (``cname``) per status; Perfetto picks its own."""

DISPLAY_TIME_UNIT = "ns"
"""The unit viewers show times in (the trace's own timestamps are microseconds)."""

_BATCH = 1024


def _us(ns: int, origin: int) -> float:
    return (ns - origin) / 1000


def _meta(name: str, pid: int, tid: int, args: dict[str, Any]) -> dict[str, Any]:
    return {"ph": "M", "name": name, "pid": pid, "tid": tid, "args": args}


def _process(pid: int, name: str, thread: str) -> list[dict[str, Any]]:
    """A process and its one thread (whose id is the process's), named and ordered by id."""
    return [
        _meta("process_name", pid, pid, {"name": name}),
        _meta("process_sort_index", pid, pid, {"sort_index": pid}),
        _meta("thread_name", pid, pid, {"name": thread}),
        _meta("thread_sort_index", pid, pid, {"sort_index": pid}),
    ]


def _request_slices(
    r: RequestIntervals, pid: int, tid: int, origin: int, priority: int
) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for iv in r.intervals:
        start = _us(iv.start_ns, origin)
        out.append(
            {
                "ph": "X",
                "name": iv.status.name,
                "cat": "status",
                "pid": pid,
                "tid": tid,
                "ts": start,
                "dur": iv.duration_ns / 1000,
                "cname": STATUS_COLORS.get(iv.status, "generic_work"),
                "args": {
                    "request_id": r.request_id,
                    "priority": priority,
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
                "pid": pid,
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


def _counter(name: str, pid: int, ts: float, args: dict[str, int]) -> dict[str, Any]:
    return {"ph": "C", "name": name, "pid": pid, "tid": pid, "ts": ts, "args": args}


def _step_slice(
    started: StepStarted, finished: StepFinished, pid: int, origin: int
) -> dict[str, Any]:
    start = _us(started.ts_ns, origin)
    return {
        "ph": "X",
        "name": f"step {finished.step}",
        "cat": "step",
        "pid": pid,
        "tid": pid,
        "ts": start,
        "dur": (finished.ts_ns - started.ts_ns) / 1000,
        "args": {
            "num_scheduled_tokens": dict(finished.num_scheduled_tokens),
            "preempted": list(finished.preempted_req_ids),
            "finished": list(finished.finished_req_ids),
        },
    }


class _EngineTrace:
    """One engine's processes in the trace: its events in, the trace events they complete out.

    A request's process is named when it arrives; its status slices and
    finish mark are written when it finishes (or, for requests still live, at
    :meth:`close`), so only live requests are held. Counters are written as
    their events come, hence in time order.
    """

    def __init__(self, engine: str, pid: int, origin: int, new_id: Callable[[], int]) -> None:
        self.engine = engine
        self.pid = pid
        self.origin = origin
        self.num_events = 0
        self._new_id = new_id
        self._finished: list[RequestState] = []
        self.fold = RequestFold(
            engine or None, on_finish=self._finished.append, keep_finished=False, history=False
        )
        self._started: StepStarted | None = None
        self._in_flight = 0  # output placeholders of the live requests
        self._pids: dict[str, int] = {}  # each live request's process, by request id

    def _engine(self, engine_id: str) -> list[dict[str, Any]]:
        name = f"minivllm {engine_id}" if engine_id else "minivllm"
        return _process(self.pid, name, "engine steps")

    def _label(self, request_id: str) -> str:
        # A merged log's records name their engine; a single engine's do not.
        return f"{self.engine} req {request_id}" if self.engine else f"req {request_id}"

    def feed(self, e: Event) -> list[dict[str, Any]]:
        """The trace events that ``e`` completes."""
        out: list[dict[str, Any]] = []
        if not self.num_events:
            # The process is named after the engine when the log starts with its configuration.
            out.extend(
                self._engine(e.engine_id if isinstance(e, EngineConfigured) else self.engine)
            )
        fold = self.fold
        fold.feed(e)
        origin = self.origin
        ts = (e.ts_ns - origin) / 1000
        if type(e) is CounterUpdated:
            if e.counter == "num_computed_tokens":
                pid = self._pids[e.request_id]
                label = self._label(e.request_id)
                out.append(_counter(label, pid, ts, {"num_computed_tokens": e.new}))
            elif e.counter == "num_output_placeholders":
                out.extend(self._in_flight_change(e.request_id, ts, e.new - e.old, e.new))
        elif isinstance(e, RequestAdded):
            pid = self._pids[e.request_id] = self._new_id()
            label = self._label(e.request_id)
            out.extend(_process(pid, label, label))
            out.append(_counter(label, pid, ts, {"num_computed_tokens": 0}))
            out.append(self._requests(ts))
        elif isinstance(e, StatusChanged):
            out.append(self._requests(ts))
            for t in self._finished:
                if t.num_output_placeholders:
                    out.extend(
                        self._in_flight_change(t.request_id, ts, -t.num_output_placeholders, 0)
                    )
                pid = self._pids.pop(t.request_id)
                out.extend(_request_slices(intervals_of(t), pid, pid, origin, t.priority))
            self._finished.clear()
        elif isinstance(e, StepStarted):
            self._started = e
        elif isinstance(e, StepFinished):
            started = self._started
            if started is not None and started.step == e.step:
                out.append(_step_slice(started, e, self.pid, origin))
            out.append(_counter("kv_cache", self.pid, ts, {"blocks_in_use": e.num_used_blocks}))
        elif isinstance(e, EngineConfigured) and self.num_events:
            out.extend(self._engine(e.engine_id)[:1])
        self.num_events += 1
        return out

    def _in_flight_change(
        self, request_id: str, ts: float, change: int, placeholders: int
    ) -> list[dict[str, Any]]:
        self._in_flight += change
        args = {"num_output_placeholders": placeholders}
        total = {"num_output_placeholders": self._in_flight}
        label = f"{self._label(request_id)} in flight"
        return [
            _counter(label, self._pids[request_id], ts, args),
            _counter("in flight", self.pid, ts, total),
        ]

    def _requests(self, ts: float) -> dict[str, Any]:
        # A preempted request waits in the waiting queue, as in vLLM.
        fold = self.fold
        args = {"running": fold.num_running, "waiting": fold.num_waiting}
        return _counter("requests", self.pid, ts, args)

    def close(self) -> list[dict[str, Any]]:
        """The slices of the requests still live when the log ended."""
        fold = self.fold
        out: list[dict[str, Any]] = []
        for t in fold.states():
            if t.finish_status is None:
                r = intervals_of(t, fold.last_ts_ns, fold.last_step)
                pid = self._pids[t.request_id]
                out.extend(_request_slices(r, pid, pid, self.origin, t.priority))
        return out


class _Trace:
    """The whole trace's fold: one :class:`_EngineTrace` per engine, a process each."""

    def __init__(self, origin: int) -> None:
        self.origin = origin
        self.first_seq: int | None = None
        self.last_seq = 0
        self.num_events = 0
        self.engines: dict[str, _EngineTrace] = {}
        self._ids = itertools.count(PID)

    def new_id(self) -> int:
        """The next process (and thread) id."""
        return next(self._ids)

    def part(self, engine: str) -> _EngineTrace:
        """The process of ``engine``, made (with the next id) on first use."""
        part = self.engines.get(engine)
        if part is None:
            part = self.engines[engine] = _EngineTrace(
                engine, self.new_id(), self.origin, self.new_id
            )
        return part

    def close(self) -> list[dict[str, Any]]:
        """The slices of the requests still live when the log ended, engine after engine."""
        return [element for part in self.engines.values() for element in part.close()]

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

    ``source`` is one engine's events, or the ``(engine_id, event)`` records
    of a merged log (a process per engine and one per request). Iterate it for the elements of
    ``traceEvents``; once the iteration is over, :meth:`other_data` gives the
    trace's ``otherData``. The log's first event fixes the clock origin, so
    an empty log is a ``ValueError``.
    """

    def __init__(self, source: Source) -> None:
        self._source = source
        self._trace: _Trace | None = None
        self.num_trace_events = 0

    def __iter__(self) -> Iterator[dict[str, Any]]:
        if self._trace is not None:
            raise RuntimeError("a ChromeTraceStream is iterated once")
        merged, source = peek_records(self._source)
        items: Iterator[Any] = iter(source)
        first = next(items, None)
        if first is None:
            raise ValueError("the event log is empty: there is nothing to trace")
        first_event: Event = first[1] if merged else first
        trace = self._trace = _Trace(first_event.ts_ns)
        trace.first_seq = first_event.seq
        count = 0
        for engine, events in engine_runs(itertools.chain((first,), items))[1]:
            feed = trace.part(engine).feed
            for e in events:
                out = feed(e)
                trace.num_events += 1
                trace.last_seq = e.seq
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


def chrome_trace(source: Source) -> dict[str, Any]:
    """The Chrome Trace Event JSON object (``traceEvents`` plus metadata) for a log."""
    stream = ChromeTraceStream(source)
    trace_events = list(stream)
    return {
        "traceEvents": trace_events,
        "displayTimeUnit": DISPLAY_TIME_UNIT,
        "otherData": stream.other_data(),
    }


def write_chrome_trace(source: Source, out: str | os.PathLike[str] | TextIO) -> int:
    """Write the trace of a log as JSON as it is built, to a path or text stream.

    Returns the number of trace events. The JSON is the same object
    :func:`chrome_trace` returns, written element by element.
    """
    if not isinstance(out, str | os.PathLike):
        return _write(ChromeTraceStream(source), out)
    with open_replacing(out) as f:
        return _write(ChromeTraceStream(source), f)


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
