"""Lab 01's API: ``trace_request`` and the helpers that answer the lab's questions.

The lab drives the engine one ``step()`` at a time and, after each step,
records ``(request_id, status, num_computed_tokens, num_tokens)`` for every
live request (and ``num_output_placeholders``, which only async scheduling
makes non-zero): those in ``scheduler.running`` (in list order), then those in
``scheduler.waiting`` (in queue order), then those that finished during the
step (in the order they were added). That is the polling path, and the one
place in this library that reads the scheduler directly: lab 01 asks learners
to poll, so its trace must be what polling sees.

:func:`trace_from_events` derives the very same list from bus events alone:
the fold (:class:`~lifecycle_trace.fold.requests.RequestFold`) keeps the
scheduler's queues as the ``StatusChanged`` events imply them; the test suite
checks that the two paths agree on random workloads, with and without async
scheduling, under either policy.

Under async scheduling (``engine_kwargs={"async_scheduling": True}``) a step
schedules a batch and processes the previous one, so a request's sampled
token lands one step after the batch that computed it was scheduled: the
first token comes a step after prefill (:func:`first_token_step`), and
between steps a decoding request has ``num_computed_tokens == num_tokens +
num_output_placeholders - 1`` (one ahead of the synchronous ``num_tokens -
1``, since its in-flight batch already counts the token being sampled).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from collections.abc import Iterable
from collections.abc import Mapping
from collections.abc import Sequence
from typing import Any

import attrs

from lifecycle_trace.fold.requests import RequestFold
from lifecycle_trace.fold.requests import RequestState
from minivllm.engine.llm_engine import LLMEngine
from minivllm.events import Event as EngineEvent
from minivllm.events import StepFinished
from minivllm.request import Request
from minivllm.sampling_params import SamplingParams
from minivllm.workload import Workload
from minivllm.workload import WorkloadRun

__all__ = [
    "Event",
    "decode_growth",
    "first_event",
    "first_token_step",
    "is_monotonic",
    "prefill_step",
    "request_ids",
    "status_sequence",
    "trace_from_events",
    "trace_request",
    "trace_requests",
    "trace_workload",
]


@attrs.frozen
class Event:
    """One live request as seen after one step: the lab's record, plus its placeholders.

    ``num_output_placeholders`` is the number of tokens scheduled for the
    request whose batch is still in flight (async scheduling); it is 0
    without async scheduling, so the lab's four fields say everything there.
    """

    request_id: str
    status: str
    num_computed_tokens: int
    num_tokens: int
    num_output_placeholders: int = 0


def _snapshot(r: Request) -> Event:
    return Event(
        r.request_id, r.status.name, r.num_computed_tokens, r.num_tokens, r.num_output_placeholders
    )


def _poll(engine: LLMEngine, tracked: Mapping[str, Request], reported: set[str]) -> list[Event]:
    """The lab's capture after one step: running, then waiting, then newly finished."""
    sched = engine.scheduler
    out = [_snapshot(r) for r in sched.running]
    out.extend(_snapshot(r) for r in sched.waiting)
    for rid, r in tracked.items():
        if rid not in reported and r.is_finished():
            reported.add(rid)
            out.append(_snapshot(r))
    return out


def trace_request(
    engine_kwargs: Mapping[str, Any], prompt: str | Sequence[int], sampling_params: SamplingParams
) -> list[Event]:
    """Run one prompt through a fresh engine step by step and return the lab's trace.

    ``engine_kwargs`` are ``LLMEngine``'s (``async_scheduling`` and ``policy``
    included).
    """
    return trace_requests(engine_kwargs, [prompt], sampling_params)


def trace_requests(
    engine_kwargs: Mapping[str, Any],
    prompts: Sequence[str | Sequence[int]],
    sampling_params: SamplingParams | Sequence[SamplingParams],
    *,
    on_engine: Callable[[LLMEngine], None] | None = None,
    max_steps: int = 100_000,
    priorities: Sequence[int] | None = None,
) -> list[Event]:
    """Like :func:`trace_request` for several prompts added before the first step.

    ``sampling_params`` is one for all prompts or one per prompt;
    ``priorities`` one per prompt (default 0; it orders them under
    ``policy="priority"``); ``on_engine`` sees the engine before anything is
    added (to subscribe observers).
    """
    if isinstance(sampling_params, SamplingParams):
        params = [sampling_params] * len(prompts)
    else:
        params = list(sampling_params)
        if len(params) != len(prompts):
            raise ValueError(
                f"sampling_params: got {len(params)} for {len(prompts)} prompts; "
                f"pass one, or one per prompt"
            )
    if priorities is None:
        priorities = [0] * len(prompts)
    elif len(priorities) != len(prompts):
        raise ValueError(
            f"priorities: got {len(priorities)} for {len(prompts)} prompts; pass one per prompt"
        )
    engine = LLMEngine(**engine_kwargs)
    if on_engine is not None:
        on_engine(engine)
    tracked: dict[str, Request] = {}
    for prompt, p, priority in zip(prompts, params, priorities, strict=True):
        rid = engine.add_request(prompt, p, priority=priority)
        tracked[rid] = engine.scheduler.requests[rid]
    events: list[Event] = []
    reported: set[str] = set()
    steps = 0
    while engine.scheduler.has_unfinished_requests():
        if steps == max_steps:
            raise RuntimeError(f"the engine did not drain within max_steps={max_steps}")
        engine.step()
        steps += 1
        events.extend(_poll(engine, tracked, reported))
    return events


def trace_workload(
    workload: Workload,
    model: Any = None,
    *,
    on_engine: Callable[[LLMEngine], None] | None = None,
    max_steps: int = 100_000,
) -> list[Event]:
    """The polling trace of a workload with arrivals, priorities and aborts.

    The workload runs as :class:`~minivllm.workload.WorkloadRun` drives it
    (``run_workload``); ``model`` defaults to the dummy model sampling token 7.
    """
    from minivllm.model_executor.dummy import DummyModelRunner

    engine = LLMEngine(
        model if model is not None else DummyModelRunner(token_id=7), **workload.engine_kwargs
    )
    if on_engine is not None:
        on_engine(engine)
    run = WorkloadRun(engine, workload, max_steps)
    events: list[Event] = []
    reported: set[str] = set()
    for _ in run:
        events.extend(_poll(engine, run.added, reported))
    return events


def _record(t: RequestState) -> Event:
    return Event(
        t.request_id, t.status.name, t.num_computed_tokens, t.num_tokens, t.num_output_placeholders
    )


def trace_from_events(events: Iterable[EngineEvent]) -> list[Event]:
    """The lab's trace, derived from bus events alone (the log must start before any request).

    The fold keeps the scheduler's running list and waiting queue as the
    status changes imply them; at the end of each step the trace lists them,
    then the requests that finished since the last step, in the order added.
    """
    out: list[Event] = []
    retired: list[RequestState] = []
    fold = RequestFold(on_retire=retired.append, keep_finished=False, history=False)
    for event in events:
        fold.feed(event)
        if type(event) is StepFinished:
            out.extend(_record(t) for t in fold.running.values())
            out.extend(_record(t) for t in fold.waiting)
            retired.sort(key=lambda t: t.life)
            out.extend(_record(t) for t in retired)
            retired.clear()
    return out


# -- the lab's questions --------------------------------------------------------


def request_ids(trace: Iterable[Event]) -> list[str]:
    """The request ids in a trace, in order of first appearance."""
    return list(dict.fromkeys(e.request_id for e in trace))


def _records(trace: Sequence[Event], request_id: str | None) -> list[Event]:
    if request_id is None:
        ids = request_ids(trace)
        if len(ids) != 1:
            raise ValueError(f"the trace holds requests {ids}; pass request_id to choose one")
        return list(trace)
    records = [e for e in trace if e.request_id == request_id]
    if not records:
        ids = request_ids(trace)
        raise ValueError(f"request {request_id!r} is not in the trace; it holds {ids}")
    return records


def first_event(trace: Sequence[Event], request_id: str | None = None) -> Event:
    """The request's first record (after its first step)."""
    return _records(trace, request_id)[0]


def status_sequence(trace: Sequence[Event], request_id: str | None = None) -> list[str]:
    """The request's statuses step by step, repeats collapsed (e.g. RUNNING, FINISHED_STOPPED)."""
    out: list[str] = []
    for e in _records(trace, request_id):
        if not out or out[-1] != e.status:
            out.append(e.status)
    return out


def prefill_step(
    trace: Sequence[Event], num_prompt_tokens: int, request_id: str | None = None
) -> int | None:
    """Index of the request's first record with ``num_computed_tokens >= num_prompt_tokens``.

    A request added before the first step has one record per step, so the
    index is the engine step at which its prefill completed. None if never.
    """
    for i, e in enumerate(_records(trace, request_id)):
        if e.num_computed_tokens >= num_prompt_tokens:
            return i
    return None


def first_token_step(
    trace: Sequence[Event], num_prompt_tokens: int, request_id: str | None = None
) -> int | None:
    """Index of the request's first record with a sampled token (num_tokens > num_prompt_tokens).

    The prefill step without async scheduling; one step later with it, when
    the prefill batch's output is processed. None if nothing was sampled.
    """
    for i, e in enumerate(_records(trace, request_id)):
        if e.num_tokens > num_prompt_tokens:
            return i
    return None


def decode_growth(
    trace: Sequence[Event], num_prompt_tokens: int, request_id: str | None = None
) -> list[int]:
    """Growth of ``num_computed_tokens`` in each record after the prefill step (decode: 1)."""
    records = _records(trace, request_id)
    start = prefill_step(records, num_prompt_tokens)
    if start is None:
        return []
    computed = [e.num_computed_tokens for e in records[start:]]
    return [b - a for a, b in itertools.pairwise(computed)]


def is_monotonic(trace: Sequence[Event], request_id: str | None = None) -> bool:
    """Whether ``num_computed_tokens`` never decreases up to and including the finish record."""
    last = -1
    for e in _records(trace, request_id):
        if e.num_computed_tokens < last:
            return False
        last = e.num_computed_tokens
        if e.status.startswith("FINISHED"):
            break
    return True
