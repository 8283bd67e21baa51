"""Rules that judge the scheduler's decisions, not only its bounds, from its events alone.

Each rule is a small function named in :data:`DECISION_RULES`. They read the
scheduler's state as the one fold (:class:`~lifecycle_trace.fold.requests.RequestFold`)
rebuilds it from the log: the waiting queue in order (a preempted request at
its head), the running list, every request's counters and the KV blocks held.
:class:`DecisionRules` feeds the fold and calls the rules at three moments:

- an **admission** (a ``StatusChanged`` to RUNNING), seen with the queue as it
  stood just before: :func:`fcfs_order`, :func:`priority_order`,
  :func:`full_sequence_gate`;
- the **end of scheduling** in a step (its first sampled token or finish, or
  its ``StepFinished``): a snapshot for :func:`admission_complete`;
- the **step's end** (``StepFinished``), with the tokens it scheduled:
  :func:`admission_complete`, :func:`unchunked_whole_prompt`,
  :func:`cached_tokens`.

Where the log cannot decide (how many prompt tokens the prefix cache would
serve a waiting request) a rule gives the scheduler the benefit of the
doubt, so a correct engine never trips one.
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Mapping
from types import MappingProxyType
from typing import ClassVar

import attrs

from lifecycle_trace.fold.requests import RequestFold
from lifecycle_trace.fold.requests import RequestState
from minivllm.core.kv_cache_manager import cdiv
from minivllm.events import CounterUpdated
from minivllm.events import EngineConfigured
from minivllm.events import Event
from minivllm.events import StatusChanged
from minivllm.events import StepFinished
from minivllm.events import StepStarted
from minivllm.request import RequestStatus

__all__ = ["DECISION_RULES", "Admission", "DecisionRules", "StepView"]

_R = RequestStatus.RUNNING
_P = RequestStatus.PREEMPTED

DECISION_RULES: Mapping[str, str] = MappingProxyType(
    {
        "fcfs_order": "under the FCFS policy a request is admitted only from the head of the "
        "waiting queue, where a preempted request goes back",
        "priority_order": "under the priority policy the admitted request is the waiting one "
        "with the lowest (priority, arrival)",
        "admission_complete": "admission stops only for a reason the log shows: the token "
        "budget is used, max_num_seqs requests run, KV blocks are short, the step preempted, "
        "or (chunked prefill off) the next prompt does not fit the budget left",
        "unchunked_whole_prompt": "with chunked prefill off an admission schedules the whole "
        "remaining prompt (or the long-prefill threshold), never a budget-sized part",
        "full_sequence_gate": "with scheduler_reserve_full_isl a request is admitted only if "
        "its whole sequence fits the free KV blocks",
        "cached_tokens": "num_cached_tokens is 0 without prefix caching, whole blocks, and "
        "equals the prefix-cache jump of the request's last admission",
    }
)
"""The decision rules, by name."""


@attrs.define
class Admission:
    """One admission as the rules see it: who, from which queue position, with which counts."""

    request: RequestState
    event: StatusChanged
    num_tokens: int
    """The request's tokens when admitted (prompt plus any outputs kept over a preemption)."""
    computed: list[tuple[int, int]] = attrs.field(factory=list)
    """Its ``num_computed_tokens`` changes in the step, as (old, new)."""

    def jump(self, n: int) -> int | None:
        """The tokens the prefix cache served, given ``n`` scheduled; None if the log is unclear.

        The admission sets ``num_computed_tokens`` to the hit (0 -> h, absent
        when h is 0), then the schedule-time advance adds ``n`` (h -> h + n).
        """
        c = self.computed
        if len(c) >= 2 and c[0][0] == 0 and c[1][0] == c[0][1] and c[1][1] - c[1][0] == n:
            return c[0][1]
        if c and c[0] == (0, n):
            return 0
        return None


@attrs.define
class StepView:
    """What the rules know about the step being judged."""

    config: EngineConfigured
    fold: RequestFold
    admissions: list[Admission] = attrs.field(factory=list)
    preempted: bool = False
    scheduling_over: bool = False
    snapshot: tuple[int, RequestState | None, int | None] | None = None
    """At the end of scheduling: (running, next waiting request, free blocks)."""

    def free_blocks(self) -> int | None:
        """Free KV blocks by the log, or None with prefix caching (shared blocks count once)."""
        if self.config.enable_prefix_caching:
            return None
        return self.config.num_gpu_blocks - 1 - self.fold.num_blocks_held

    def next_waiting(self) -> RequestState | None:
        """The waiting request admission would consider next under the policy."""
        waiting = self.fold.waiting
        if not waiting:
            return None
        if self.config.policy == "priority":
            return min(waiting, key=self.order_key)
        return waiting[0]

    def order_key(self, state: RequestState) -> tuple[int, int, str]:
        """A request's place under the priority policy: (priority, arrival, id)."""
        return (state.priority, state.index, state.request_id)

    def capped(self, n: int) -> int:
        """``n`` tokens capped by the long-prefill threshold."""
        threshold = self.config.long_prefill_token_threshold
        return threshold if 0 < threshold < n else n


Report = Callable[[str, str | None, Event, tuple[int, ...], str], None]
"""How a rule reports: ``report(rule, request_id, event, seqs, message)``."""


# -- at an admission (the queues as they stood just before it) ----------------------


def fcfs_order(
    view: StepView, admitted: RequestState, event: StatusChanged, report: Report
) -> None:
    """Under FCFS, only the head of the waiting queue is admitted."""
    waiting = view.fold.waiting
    if view.config.policy != "fcfs" or not waiting or waiting[0] is admitted:
        return
    head = waiting[0]
    report(
        "fcfs_order",
        admitted.request_id,
        event,
        (event.seq,),
        f"admitted while {head.request_id} ({head.status.name}) was at the head of the waiting "
        f"queue {[t.request_id for t in waiting]}",
    )


def priority_order(
    view: StepView, admitted: RequestState, event: StatusChanged, report: Report
) -> None:
    """Under the priority policy, the lowest (priority, arrival) waiting request is admitted."""
    if view.config.policy != "priority" or not view.fold.waiting:
        return
    first = min(view.fold.waiting, key=view.order_key)
    if first is admitted:
        return
    report(
        "priority_order",
        admitted.request_id,
        event,
        (event.seq,),
        f"admitted with (priority, arrival) {view.order_key(admitted)[:2]} while "
        f"{first.request_id} waited with {view.order_key(first)[:2]}",
    )


def full_sequence_gate(
    view: StepView, admitted: RequestState, event: StatusChanged, report: Report
) -> None:
    """With the gate on (and caching off), the whole sequence fit the free blocks."""
    config = view.config
    if not config.scheduler_reserve_full_isl or config.enable_prefix_caching:
        return
    # The admission's own blocks were allocated just before its status change.
    free_before = config.num_gpu_blocks - 1 - (view.fold.num_blocks_held - admitted.num_blocks)
    whole = cdiv(min(event.num_tokens, config.max_model_len), config.block_size)
    if whole > free_before:
        report(
            "full_sequence_gate",
            admitted.request_id,
            event,
            (event.seq,),
            f"admitted with {event.num_tokens} tokens needing {whole} blocks, {free_before} free",
        )


ADMISSION_RULES = (fcfs_order, priority_order, full_sequence_gate)
"""The rules judged at each admission."""


# -- at the end of the step ------------------------------------------------------------


def admission_complete(view: StepView, finished: StepFinished, report: Report) -> None:
    """A request still waits after scheduling only for a reason the log shows."""
    if view.snapshot is None or view.preempted:
        return
    running, head, free = view.snapshot
    if head is None:
        return
    config = view.config
    left = config.max_num_batched_tokens - sum(finished.num_scheduled_tokens.values())
    if left <= 0 or running >= config.max_num_seqs:
        return
    # With no prefix-cache hit a request computes all its tokens: the most it may ask.
    most = view.capped(head.num_tokens)
    if not config.enable_chunked_prefill and most > left:
        return
    if free is not None:
        chunk = min(most, left)
        tokens = head.num_tokens if config.scheduler_reserve_full_isl else chunk
        need = cdiv(min(tokens, config.max_model_len), config.block_size)
        if need > free:
            return
    else:
        return  # with prefix caching the log cannot tell how many blocks were free
    report(
        "admission_complete",
        head.request_id,
        finished,
        (finished.seq,),
        f"waited with {left} of {config.max_num_batched_tokens} tokens of budget left, "
        f"{running} of {config.max_num_seqs} sequences running, {free} free blocks "
        f"and no preemption",
    )


def unchunked_whole_prompt(view: StepView, finished: StepFinished, report: Report) -> None:
    """With chunked prefill off, each admission schedules its whole remaining prompt."""
    if view.config.enable_chunked_prefill:
        return
    scheduled = finished.num_scheduled_tokens
    for a in view.admissions:
        rid = a.request.request_id
        n = scheduled.get(rid)
        jump = None if n is None else a.jump(n)
        if n is None or jump is None:
            continue
        want = view.capped(a.num_tokens - jump)
        if n != want:
            report(
                "unchunked_whole_prompt",
                rid,
                finished,
                (a.event.seq, finished.seq),
                f"admitted with {n} of its {a.num_tokens - jump} remaining tokens scheduled",
            )


def cached_tokens(view: StepView, finished: StepFinished, report: Report) -> None:
    """num_cached_tokens: 0 without caching, whole blocks, the last admission's jump."""
    config = view.config
    scheduled = finished.num_scheduled_tokens
    for a in view.admissions:
        t = a.request
        n = scheduled.get(t.request_id)
        jump = None if n is None else a.jump(n)
        if jump is None:
            continue
        cached = t.num_cached_tokens
        problem = None
        if not config.enable_prefix_caching and (jump or cached):
            problem = f"prefix caching is off, yet the admission jumped {jump} (cached {cached})"
        elif jump % config.block_size:
            problem = f"a prefix-cache jump of {jump} tokens is not whole blocks"
        elif cached != jump:
            problem = f"num_cached_tokens is {cached}, the admission's jump {jump}"
        if problem is not None:
            report("cached_tokens", t.request_id, finished, (a.event.seq, finished.seq), problem)


STEP_RULES = (admission_complete, unchunked_whole_prompt, cached_tokens)
"""The rules judged at each step's end."""


class DecisionRules:
    """A bus handler that judges admissions and steps; see the module docstring.

    ``report(rule, request_id, event, seqs, message)`` receives each finding.
    Call it with each event before ``fold`` takes the event, and :meth:`after`
    once it has; without a ``fold`` it keeps one and feeds it itself.
    """

    EVENT_TYPES: ClassVar[tuple[type[Event], ...]] = (
        StatusChanged,
        CounterUpdated,
        StepStarted,
        StepFinished,
    )
    """The events it judges against the state before them."""
    AFTER_EVENT_TYPES: ClassVar[tuple[type[Event], ...]] = (EngineConfigured, StepFinished)
    """The events :meth:`after` reads."""

    def __init__(self, report: Report, fold: RequestFold | None = None) -> None:
        self.report = report
        self._own_fold = fold is None
        self.fold = (
            RequestFold(strict=False, keep_finished=False, history=False) if fold is None else fold
        )
        self.view: StepView | None = None

    def __call__(self, event: Event) -> None:
        """Judge one event against the state before it."""
        view = self.view
        if view is not None:
            self._before(view, event)
        if self._own_fold:
            self.fold.feed(event)
            self.after(event)

    def after(self, event: Event) -> None:
        """Judge what needs the state after ``event``: the step rules, at a ``StepFinished``."""
        if isinstance(event, EngineConfigured):
            self.view = StepView(event, self.fold)
        elif isinstance(event, StepFinished) and self.view is not None:
            view = self.view
            for rule in STEP_RULES:
                rule(view, event, self.report)
            view.admissions = []
            view.snapshot = None
            view.scheduling_over = True

    def _before(self, view: StepView, event: Event) -> None:
        if isinstance(event, StatusChanged):
            self._on_status(view, event)
        elif isinstance(event, CounterUpdated):
            if event.counter == "num_tokens":
                self._end_of_scheduling(view)
            elif event.counter == "num_computed_tokens":
                for a in view.admissions:
                    if a.request.request_id == event.request_id:
                        a.computed.append((event.old, event.new))
        elif isinstance(event, StepStarted):
            view.admissions = []
            view.preempted = False
            view.scheduling_over = False
            view.snapshot = None
        elif isinstance(event, StepFinished):
            self._end_of_scheduling(view)

    def _on_status(self, view: StepView, event: StatusChanged) -> None:
        new = event.new_status
        t = self.fold.live.get(event.request_id)
        if new is _R and t is not None and not view.scheduling_over:
            for rule in ADMISSION_RULES:
                rule(view, t, event, self.report)
            view.admissions.append(Admission(t, event, event.num_tokens))
        elif new is _P:
            view.preempted = True
        elif RequestStatus.is_finished(new) and event.old_status is _R:
            self._end_of_scheduling(view)

    def _end_of_scheduling(self, view: StepView) -> None:
        if view.scheduling_over:
            return
        view.scheduling_over = True
        view.snapshot = (self.fold.num_running, view.next_waiting(), view.free_blocks())
