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
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from typing import Any

from lifecycle_trace.export.intervals import RequestIntervals, status_intervals
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
    "ENGINE_TID",
    "PID",
    "STATUS_COLORS",
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

_RUNNING = RequestStatus.RUNNING


def _us(ns: int, origin: int) -> float:
    return (ns - origin) / 1000


def _metadata(engine_name: str, order: list[RequestIntervals]) -> list[dict[str, Any]]:
    def meta(name: str, tid: int, args: dict[str, Any]) -> dict[str, Any]:
        return {"ph": "M", "name": name, "pid": PID, "tid": tid, "args": args}

    out = [
        meta("process_name", ENGINE_TID, {"name": engine_name}),
        meta("thread_name", ENGINE_TID, {"name": "engine steps"}),
        meta("thread_sort_index", ENGINE_TID, {"sort_index": 0}),
    ]
    for tid, r in enumerate(order, 1):
        out.append(meta("thread_name", tid, {"name": r.request_id}))
        out.append(meta("thread_sort_index", tid, {"sort_index": tid}))
    return out


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


def _stream_events(events: list[Event], origin: int) -> list[dict[str, Any]]:
    """Step slices and counter samples, in the log's (time) order."""
    out: list[dict[str, Any]] = []
    running = waiting = 0
    started: StepStarted | None = None
    for e in events:
        ts = _us(e.ts_ns, origin)
        if isinstance(e, CounterUpdated):
            if e.counter == "num_computed_tokens":
                out.append(_counter(f"request {e.request_id}", ts, {"num_computed_tokens": e.new}))
        elif isinstance(e, RequestAdded):
            waiting += 1
            out.append(_counter(f"request {e.request_id}", ts, {"num_computed_tokens": 0}))
            out.append(_counter("requests", ts, {"running": running, "waiting": waiting}))
        elif isinstance(e, StatusChanged):
            # A preempted request waits in the waiting queue, as in vLLM.
            if e.old_status == _RUNNING:
                running -= 1
            else:
                waiting -= 1
            if e.new_status == _RUNNING:
                running += 1
            elif not RequestStatus.is_finished(e.new_status):
                waiting += 1
            out.append(_counter("requests", ts, {"running": running, "waiting": waiting}))
        elif isinstance(e, StepStarted):
            started = e
        elif isinstance(e, StepFinished):
            if started is not None and started.step == e.step:
                out.append(_step_slice(started, e, origin))
            out.append(_counter("kv_cache", ts, {"blocks_in_use": e.num_used_blocks}))
    return out


def chrome_trace(events: Iterable[Event]) -> dict[str, Any]:
    """The Chrome Trace Event JSON object (``traceEvents`` plus metadata) for a log."""
    log = list(events)
    if not log:
        raise ValueError("the event log is empty: there is nothing to trace")
    origin = log[0].ts_ns
    config = next((e for e in log if isinstance(e, EngineConfigured)), None)
    engine_name = f"minivllm {config.engine_id}" if config is not None else "minivllm"
    order = sorted(status_intervals(log).values(), key=lambda r: (r.arrival_ns, r.arrival_seq))
    trace_events = _metadata(engine_name, order)
    for tid, r in enumerate(order, 1):
        trace_events.extend(_request_slices(r, tid, origin))
    trace_events.extend(_stream_events(log, origin))
    return {
        "traceEvents": trace_events,
        "displayTimeUnit": "ns",
        "otherData": {
            "source": "lifecycle_trace",
            "clock_origin_ns": origin,
            "first_seq": log[0].seq,
            "last_seq": log[-1].seq,
        },
    }


def write_chrome_trace(events: Iterable[Event], path: str | os.PathLike[str]) -> int:
    """Write the trace of ``events`` to ``path`` as JSON; return the number of trace events."""
    trace = chrome_trace(events)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(trace, f, separators=(",", ":"))
    return len(trace["traceEvents"])
