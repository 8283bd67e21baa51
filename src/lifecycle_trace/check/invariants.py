"""The event rules: each event checked against the bounds of vLLM 0.22.1's scheduler.

:class:`EventRules` keeps a few integers per live request and does O(1) work
per event, plus O(running requests) at each ``StepFinished``. Its rules are
named in :data:`EVENT_RULES`; :class:`~lifecycle_trace.check.InvariantChecker`
runs them together with the decision rules and reports both as
:class:`~lifecycle_trace.check.report.Violation` s.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from lifecycle_trace.check.report import Violation
from minivllm.events import BlocksAllocated
from minivllm.events import BlocksFreed
from minivllm.events import CounterUpdated
from minivllm.events import EngineConfigured
from minivllm.events import Event
from minivllm.events import RequestAdded
from minivllm.events import StatusChanged
from minivllm.events import StepFinished
from minivllm.events import StepStarted
from minivllm.request import RequestStatus

__all__ = ["ASYNC_TRANSITIONS", "EVENT_RULES", "FINISHED_KEPT", "LEGAL_TRANSITIONS", "EventRules"]

_W = RequestStatus.WAITING
_R = RequestStatus.RUNNING
_P = RequestStatus.PREEMPTED
_STOPPED = RequestStatus.FINISHED_STOPPED
_CAPPED = RequestStatus.FINISHED_LENGTH_CAPPED
_ABORTED = RequestStatus.FINISHED_ABORTED

LEGAL_TRANSITIONS: frozenset[tuple[RequestStatus, RequestStatus]] = frozenset(
    {
        (_W, _R),  # admitted
        (_R, _P),  # evicted
        (_P, _R),  # re-admitted
        (_R, _STOPPED),  # EOS, stop token or stop string
        (_R, _CAPPED),  # max_tokens or max_model_len
        (_W, _ABORTED),
        (_R, _ABORTED),
        (_P, _ABORTED),
    }
)
"""Every status change vLLM 0.22.1's scheduler makes; anything else is a bug."""

ASYNC_TRANSITIONS: frozenset[tuple[RequestStatus, RequestStatus]] = frozenset(
    {(_P, _STOPPED), (_P, _CAPPED)}
)
"""Legal only under async scheduling: a batch in flight when its request was
preempted still delivers its token, which may stop the request."""

FINISHED_KEPT = 4096
"""How many finished requests the checker remembers, so memory stays bounded on long streams.

An event naming a request forgotten this way is still reported, as
``request_identity`` rather than ``finished_is_final``.
"""

EVENT_RULES: Mapping[str, str] = MappingProxyType(
    {
        "event_order": "sequence numbers increase by exactly 1 and steps never go back",
        "engine_configured": "EngineConfigured comes first, exactly once",
        "request_identity": "events name added requests; a live request id is not added twice",
        "status_consistent": "a StatusChanged's old_status is the request's current status",
        "legal_transition": "only transitions of LEGAL_TRANSITIONS happen",
        "finished_is_final": "a finished request never changes again (it finishes exactly once)",
        "counter_consistent": "each counter event starts from the value the log last gave it",
        "computed_monotonic": "num_computed_tokens never decreases, except the reset to 0 "
        "on preemption (or the undo of a step whose model output was refused)",
        "preempted_reset": "a preempted request's num_computed_tokens is 0 by the end of its step",
        "computed_bounds": "0 <= num_computed_tokens <= num_tokens + num_output_placeholders "
        "and num_computed_tokens < max_model_len",
        "decode_gap": "between steps a decoding request has num_computed_tokens == num_tokens "
        "+ num_output_placeholders - 1 (num_tokens - 1 without async scheduling)",
        "decode_advance": "a request gains one token per sample and at most one per step "
        "(a decode that computes more than 1 token breaks computed_bounds first)",
        "scheduled_consistent": "a step's num_scheduled_tokens matches each request's "
        "num_computed_tokens advance",
        "token_budget": "per step, scheduled tokens <= max_num_batched_tokens",
        "long_prefill_threshold": "no request gets more than long_prefill_token_threshold "
        "tokens in a step (when it is set)",
        "max_num_seqs": "running requests <= max_num_seqs",
        "no_admission_after_preemption": "no waiting request is admitted in a step that preempted",
        "preempt_last": "the preempted request is the last of the running queue (under the "
        "priority policy: the running request with the highest (priority, arrival))",
        "kv_accounting": "KV blocks used + free == usable blocks, and used blocks agree "
        "with the blocks the requests hold",
        "request_blocks": "a request frees exactly the blocks it holds; between steps only "
        "running requests hold blocks, enough for their computed tokens",
        "output_bounds": "num_output_tokens <= max_tokens and num_tokens <= max_model_len",
        "min_tokens": "a finished request has >= min_tokens outputs unless aborted or "
        "capped by max_model_len",
        "length_cap": "FINISHED_LENGTH_CAPPED only at a cap, and a request at a cap "
        "finishes in that step",
        "step_summary": "the running and waiting counts of step events match the log",
        "all_finished": "once the engine drains, every added request has finished",
        "kv_drained": "once the engine drains, no request holds blocks and all blocks are free",
    }
)
"""The event rules, by name, with what each one requires."""


class _Req:
    """What the log has said about one request so far (mutable, private)."""

    __slots__ = (
        "added_seq",
        "admitted_in_step",
        "blocks",
        "blocks_seq",
        "computed",
        "computed_seq",
        "counters",
        "decoding",
        "max_tokens",
        "min_tokens",
        "priority",
        "prompt",
        "request_id",
        "reverted",
        "stamp",
        "start_computed",
        "start_tokens",
        "status",
        "status_seq",
        "tokens",
        "tokens_seq",
    )

    def __init__(self, ev: RequestAdded) -> None:
        self.request_id = ev.request_id
        self.added_seq = ev.seq
        self.prompt = ev.num_prompt_tokens
        self.max_tokens = ev.max_tokens
        self.min_tokens = ev.min_tokens
        self.priority = ev.priority
        self.status = _W
        self.status_seq = ev.seq
        self.computed = 0
        self.computed_seq = ev.seq
        self.tokens = ev.num_prompt_tokens
        self.tokens_seq = ev.seq
        self.blocks = 0
        self.blocks_seq = ev.seq
        # True once the request sampled a token since its last admission.
        self.decoding = False
        self.counters: dict[str, int] = {
            "num_cached_tokens": 0,
            "num_preemptions": 0,
            "num_output_placeholders": 0,
        }
        self.stamp = -1
        self.start_computed = 0
        self.start_tokens = 0
        self.admitted_in_step = False
        self.reverted = False


class EventRules:
    """A bus handler that checks every event against :data:`EVENT_RULES`.

    Subscribe it before the first request (``engine.bus.subscribe(checker)``)
    or feed it a stored log; read ``violations`` at any time and call
    :meth:`finish` once the stream is complete (the engine drained) for the
    end-of-stream checks. It never raises: a broken invariant becomes a
    :class:`Violation`, so it is safe on a live engine.
    """

    def __init__(self) -> None:
        self.violations: list[Violation] = []
        self._live: dict[str, _Req] = {}
        self._finished: dict[str, _Req] = {}
        self._config: EngineConfigured | None = None
        self._next_seq: int | None = None
        self._last_step = -1
        self._step_no = 0
        self._in_step = False
        self._preempted_in_step: int | None = None
        # Insertion-ordered: the running queue as the log implies it.
        self._running: dict[str, _Req] = {}
        self._num_waiting = 0
        self._touched: list[_Req] = []
        self._just_finished: list[_Req] = []
        self._just_preempted: list[_Req] = []
        self._holders: dict[str, _Req] = {}
        self._held_total = 0
        self._last_step_finished: StepFinished | None = None
        self._kv_changed_since_step = False
        self._done = False
        self._dispatch: dict[type[Event], Callable[[Any], None]] = {
            EngineConfigured: self._on_configured,
            RequestAdded: self._on_added,
            StatusChanged: self._on_status,
            CounterUpdated: self._on_counter,
            StepStarted: self._on_step_started,
            StepFinished: self._on_step_finished,
            BlocksAllocated: self._on_allocated,
            BlocksFreed: self._on_freed,
        }

    # -- plumbing -------------------------------------------------------------

    def __call__(self, event: Event) -> None:
        """Check one event (the bus handler entry point)."""
        seq = event.seq
        step = event.step
        # One comparison each on the hot path; the first event and any
        # disorder take the slow path.
        if seq != self._next_seq or step < self._last_step:
            self._check_header(event)
        self._next_seq = seq + 1
        self._last_step = step
        handler = self._dispatch.get(type(event))
        if handler is not None:
            handler(event)

    def _check_header(self, event: Event) -> None:
        seq = event.seq
        expected = self._next_seq
        if expected is None:
            if type(event) is not EngineConfigured:
                self._add(
                    "engine_configured",
                    None,
                    event,
                    (seq,),
                    "the log does not start with EngineConfigured",
                )
        elif seq != expected:
            self._add(
                "event_order", None, event, (seq,), f"sequence number {seq}, expected {expected}"
            )
        if event.step < self._last_step:
            self._add(
                "event_order",
                None,
                event,
                (seq,),
                f"step {event.step} after step {self._last_step}",
            )

    def _add(
        self,
        invariant: str,
        request_id: str | None,
        event: Event,
        seqs: tuple[int, ...],
        message: str,
    ) -> None:
        self._report(invariant, request_id, event.step, seqs, message)

    def _report(
        self, invariant: str, request_id: str | None, step: int, seqs: tuple[int, ...], message: str
    ) -> None:
        self.violations.append(
            Violation(invariant, request_id, step, tuple(sorted(set(seqs))), message)
        )

    def _request(self, event: Any) -> _Req | None:
        r = self._live.get(event.request_id)
        if r is not None:
            return r
        done = self._finished.get(event.request_id)
        if done is not None:
            self._add(
                "finished_is_final",
                event.request_id,
                event,
                (done.status_seq, event.seq),
                f"{type(event).__name__} after the request finished as {done.status.name}",
            )
        else:
            self._add(
                "request_identity",
                event.request_id,
                event,
                (event.seq,),
                f"{type(event).__name__} for a request that was never added "
                f"(or finished more than {FINISHED_KEPT} requests ago)",
            )
        return None

    def _touch(self, r: _Req) -> None:
        # Snapshot the request the first time this step sees it, so the
        # end-of-step checks cost O(touched) and not O(all requests).
        if r.stamp != self._step_no:
            r.stamp = self._step_no
            r.start_computed = r.computed
            r.start_tokens = r.tokens
            r.admitted_in_step = False
            r.reverted = False
            self._touched.append(r)

    # -- events ---------------------------------------------------------------

    def _on_configured(self, ev: EngineConfigured) -> None:
        if self._config is not None:
            self._add(
                "engine_configured",
                None,
                ev,
                (self._config.seq, ev.seq),
                "EngineConfigured emitted twice",
            )
        self._config = ev

    def _on_added(self, ev: RequestAdded) -> None:
        rid = ev.request_id
        old = self._live.get(rid)
        if old is not None:
            self._add(
                "request_identity",
                rid,
                ev,
                (old.added_seq, ev.seq),
                "a live request id was added again",
            )
            return
        self._finished.pop(rid, None)
        self._live[rid] = _Req(ev)
        self._num_waiting += 1

    def _on_status(self, ev: StatusChanged) -> None:
        r = self._request(ev)
        if r is None:
            return
        self._touch(r)
        rid = r.request_id
        old, new = r.status, ev.new_status
        if ev.old_status is not old:
            self._add(
                "status_consistent",
                rid,
                ev,
                (r.status_seq, ev.seq),
                f"old_status {ev.old_status.name}, but the log last set {old.name}",
            )
        if (old, new) not in LEGAL_TRANSITIONS and not (
            (old, new) in ASYNC_TRANSITIONS
            and self._config is not None
            and self._config.async_scheduling
        ):
            self._add(
                "legal_transition", rid, ev, (r.status_seq, ev.seq), f"{old.name} -> {new.name}"
            )
        if (
            ev.num_computed_tokens != r.computed
            or ev.num_tokens != r.tokens
            or ev.num_output_tokens != r.tokens - r.prompt
        ):
            self._add(
                "counter_consistent",
                rid,
                ev,
                (r.computed_seq, r.tokens_seq, ev.seq),
                f"StatusChanged carries computed/tokens/outputs {ev.num_computed_tokens}/"
                f"{ev.num_tokens}/{ev.num_output_tokens}, the log says {r.computed}/"
                f"{r.tokens}/{r.tokens - r.prompt}",
            )
        if old is _R:
            if new is _P:
                self._check_victim(r, ev)
            self._running.pop(rid, None)
        elif old is _W or old is _P:
            self._num_waiting -= 1
        if new is _R:
            self._admit(r, ev)
        elif new is _P:
            if self._in_step:
                self._preempted_in_step = ev.seq
            self._num_waiting += 1
            r.decoding = False
            self._just_preempted.append(r)
        elif new > _P:
            self._finish(r, ev)
        else:
            self._num_waiting += 1
        r.status = new
        r.status_seq = ev.seq

    def _check_victim(self, r: _Req, ev: StatusChanged) -> None:
        cfg = self._config
        if cfg is not None and cfg.policy == "priority":
            # vLLM: max(running, key=(priority, arrival_time)); arrival is add order here.
            victim = max(self._running.values(), key=lambda q: (q.priority, q.added_seq))
            if victim is not r:
                self._add(
                    "preempt_last",
                    r.request_id,
                    ev,
                    (ev.seq,),
                    f"preempted with (priority, arrival) ({r.priority}, {r.added_seq}), but "
                    f"{victim.request_id} ran with ({victim.priority}, {victim.added_seq})",
                )
            return
        last = next(reversed(self._running))
        if last != r.request_id:
            self._add(
                "preempt_last",
                r.request_id,
                ev,
                (ev.seq,),
                f"preempted, but {last} was behind it in the running queue",
            )

    def _admit(self, r: _Req, ev: StatusChanged) -> None:
        rid = r.request_id
        if self._preempted_in_step is not None:
            self._add(
                "no_admission_after_preemption",
                rid,
                ev,
                (self._preempted_in_step, ev.seq),
                "admitted in a step that preempted",
            )
        if r.status is _P and r.computed != 0:
            self._add(
                "preempted_reset",
                rid,
                ev,
                (r.computed_seq, ev.seq),
                f"re-admitted with num_computed_tokens {r.computed}, not 0",
            )
        self._running[rid] = r
        cfg = self._config
        if cfg is not None and len(self._running) > cfg.max_num_seqs:
            self._add(
                "max_num_seqs",
                rid,
                ev,
                (ev.seq,),
                f"{len(self._running)} running requests, max_num_seqs {cfg.max_num_seqs}",
            )
        r.decoding = False
        r.admitted_in_step = True

    def _finish(self, r: _Req, ev: StatusChanged) -> None:
        rid = r.request_id
        new = ev.new_status
        del self._live[rid]
        self._finished[rid] = r
        self._just_finished.append(r)
        if new is _ABORTED:
            return
        outputs = r.tokens - r.prompt
        cfg = self._config
        at_model_len = cfg is not None and r.tokens >= cfg.max_model_len
        if outputs < r.min_tokens and not at_model_len:
            self._add(
                "min_tokens",
                rid,
                ev,
                (r.tokens_seq, ev.seq),
                f"finished as {new.name} with {outputs} outputs, min_tokens {r.min_tokens}",
            )
        if new is _CAPPED and outputs < r.max_tokens and not at_model_len:
            self._add(
                "length_cap",
                rid,
                ev,
                (r.tokens_seq, ev.seq),
                f"FINISHED_LENGTH_CAPPED with {outputs} of {r.max_tokens} outputs and "
                f"{r.tokens} tokens",
            )

    def _on_counter(self, ev: CounterUpdated) -> None:
        r = self._live.get(ev.request_id)
        if r is None:
            r = self._request(ev)
            if r is None:
                return
        if r.stamp != self._step_no:
            self._touch(r)
        counter = ev.counter
        if counter == "num_computed_tokens":
            self._computed(r, ev)
        elif counter == "num_tokens":
            self._sampled(r, ev)
        else:
            known = r.counters.get(counter)
            if known is not None and ev.old != known:
                self._add(
                    "counter_consistent",
                    r.request_id,
                    ev,
                    (ev.seq,),
                    f"{counter} goes from {ev.old}, the log last gave {known}",
                )
            r.counters[counter] = ev.new

    def _computed(self, r: _Req, ev: CounterUpdated) -> None:
        rid = r.request_id
        old, new = ev.old, ev.new
        if old != r.computed:
            self._add(
                "counter_consistent",
                rid,
                ev,
                (r.computed_seq, ev.seq),
                f"num_computed_tokens goes from {old}, the log last gave {r.computed}",
            )
        if new < old:
            # The two legal decreases: the preemption reset, and the undo of this
            # step's schedule-time advance when the model output was refused.
            undo = (
                r.stamp == self._step_no and new == r.start_computed and r.tokens == r.start_tokens
            )
            if new == 0 and r.status is _P:
                pass
            elif undo and self._in_step:
                r.reverted = True
            else:
                self._add(
                    "computed_monotonic",
                    rid,
                    ev,
                    (r.computed_seq, ev.seq),
                    f"num_computed_tokens decreased from {old} to {new} while {r.status.name}",
                )
        cfg = self._config
        top = r.tokens + r.counters["num_output_placeholders"]
        if new < 0 or new > top or (cfg is not None and new >= cfg.max_model_len):
            limit = f", max_model_len {cfg.max_model_len}" if cfg is not None else ""
            self._add(
                "computed_bounds",
                rid,
                ev,
                (r.tokens_seq, ev.seq),
                f"num_computed_tokens {new} with num_tokens {r.tokens} and "
                f"{top - r.tokens} output placeholders{limit}",
            )
        r.computed = new
        r.computed_seq = ev.seq

    def _sampled(self, r: _Req, ev: CounterUpdated) -> None:
        rid = r.request_id
        if ev.old != r.tokens:
            self._add(
                "counter_consistent",
                rid,
                ev,
                (r.tokens_seq, ev.seq),
                f"num_tokens goes from {ev.old}, the log last gave {r.tokens}",
            )
        new = ev.new
        if new != ev.old + 1 or new - r.start_tokens > 1:
            self._add(
                "decode_advance",
                rid,
                ev,
                (r.tokens_seq, ev.seq),
                f"num_tokens went from {r.start_tokens} to {new} in one step",
            )
        outputs = new - r.prompt
        cfg = self._config
        if outputs > r.max_tokens or (cfg is not None and new > cfg.max_model_len):
            limit = f", max_model_len {cfg.max_model_len}" if cfg is not None else ""
            self._add(
                "output_bounds",
                rid,
                ev,
                (r.added_seq, ev.seq),
                f"{outputs} outputs ({new} tokens), max_tokens {r.max_tokens}{limit}",
            )
        r.tokens = new
        r.tokens_seq = ev.seq
        r.decoding = True

    def _on_allocated(self, ev: BlocksAllocated) -> None:
        r = self._request(ev)
        if r is None:
            return
        n = ev.num_new_blocks + ev.num_cached_blocks
        r.blocks += n
        r.blocks_seq = ev.seq
        self._held_total += n
        self._holders[r.request_id] = r
        self._kv_changed_since_step = True

    def _on_freed(self, ev: BlocksFreed) -> None:
        rid = ev.request_id
        r = self._live.get(rid) or self._finished.get(rid)
        if r is None:
            self._request(ev)
            return
        if ev.num_blocks != r.blocks:
            self._add(
                "request_blocks",
                rid,
                ev,
                (r.blocks_seq, ev.seq),
                f"freed {ev.num_blocks} blocks, but holds {r.blocks}",
            )
        self._held_total -= r.blocks
        r.blocks = 0
        r.blocks_seq = ev.seq
        self._holders.pop(rid, None)
        self._kv_changed_since_step = True

    def _on_step_started(self, ev: StepStarted) -> None:
        self._check_released(ev)
        self._in_step = True
        self._preempted_in_step = None
        if ev.num_running != len(self._running) or ev.num_waiting != self._num_waiting:
            self._add(
                "step_summary",
                None,
                ev,
                (ev.seq,),
                f"StepStarted says {ev.num_running} running, {ev.num_waiting} waiting; the log "
                f"says {len(self._running)} and {self._num_waiting}",
            )

    def _on_step_finished(self, ev: StepFinished) -> None:
        cfg = self._config
        seq = ev.seq
        scheduled = ev.num_scheduled_tokens
        if ev.num_running != len(self._running) or ev.num_waiting != self._num_waiting:
            self._add(
                "step_summary",
                None,
                ev,
                (seq,),
                f"StepFinished says {ev.num_running} running, {ev.num_waiting} waiting; the log "
                f"says {len(self._running)} and {self._num_waiting}",
            )
        if cfg is not None:
            self._check_budget(ev, cfg)
        self._check_advances(ev, scheduled, cfg)
        for r in self._running.values():
            rid = r.request_id
            placeholders = r.counters["num_output_placeholders"]
            if r.decoding and r.computed != r.tokens + placeholders - 1:
                self._add(
                    "decode_gap",
                    rid,
                    ev,
                    (r.computed_seq, r.tokens_seq, seq),
                    f"decoding with num_computed_tokens {r.computed}, num_tokens {r.tokens}, "
                    f"{placeholders} output placeholders",
                )
            if cfg is not None and r.blocks * cfg.block_size < r.computed:
                self._add(
                    "request_blocks",
                    rid,
                    ev,
                    (r.blocks_seq, r.computed_seq, seq),
                    f"{r.blocks} blocks of {cfg.block_size} for {r.computed} computed tokens",
                )
            if r.tokens - r.prompt >= r.max_tokens or (
                cfg is not None and r.tokens >= cfg.max_model_len
            ):
                self._add(
                    "length_cap",
                    rid,
                    ev,
                    (r.tokens_seq, seq),
                    f"still running with {r.tokens - r.prompt} outputs (max_tokens "
                    f"{r.max_tokens}) and {r.tokens} tokens",
                )
        for r in self._just_preempted:
            if r.status is _P and r.computed != 0:
                self._add(
                    "preempted_reset",
                    r.request_id,
                    ev,
                    (r.status_seq, seq),
                    f"preempted but num_computed_tokens is {r.computed}",
                )
        self._just_preempted.clear()
        self._check_released(ev)
        for rid, r in self._holders.items():
            if r.status is not _R:
                self._add(
                    "request_blocks",
                    rid,
                    ev,
                    (r.blocks_seq, r.status_seq, seq),
                    f"holds {r.blocks} blocks while {r.status.name}",
                )
        if cfg is not None:
            self._check_kv(ev, cfg)
        self._touched.clear()
        self._in_step = False
        self._preempted_in_step = None
        self._step_no += 1
        self._last_step_finished = ev
        self._kv_changed_since_step = False
        finished = self._finished
        if len(finished) > FINISHED_KEPT:
            for rid in list(itertools.islice(finished, len(finished) - FINISHED_KEPT)):
                del finished[rid]

    def _check_budget(self, ev: StepFinished, cfg: EngineConfigured) -> None:
        scheduled = ev.num_scheduled_tokens
        total = sum(scheduled.values())
        if total > cfg.max_num_batched_tokens:
            self._add(
                "token_budget",
                None,
                ev,
                (ev.seq,),
                f"{total} tokens scheduled, max_num_batched_tokens {cfg.max_num_batched_tokens}",
            )
        threshold = cfg.long_prefill_token_threshold
        if threshold > 0:
            for rid, n in scheduled.items():
                if n > threshold:
                    self._add(
                        "long_prefill_threshold",
                        rid,
                        ev,
                        (ev.seq,),
                        f"{n} tokens scheduled, long_prefill_token_threshold {threshold}",
                    )

    def _check_advances(
        self, ev: StepFinished, scheduled: Mapping[str, int], cfg: EngineConfigured | None
    ) -> None:
        step_no = self._step_no
        caching = cfg is not None and cfg.enable_prefix_caching
        block_size = cfg.block_size if cfg is not None else 1
        for rid, n in scheduled.items():
            r = self._live.get(rid) or self._finished.get(rid)
            if r is None:
                self._add("request_identity", rid, ev, (ev.seq,), "scheduled but never added")
                continue
            advanced = r.computed - r.start_computed if r.stamp == step_no else 0
            if r.stamp == step_no and r.reverted:
                continue
            extra = advanced - n
            # A request admitted this step may also jump by its prefix-cache hit.
            hit_ok = caching and r.admitted_in_step and extra > 0 and extra % block_size == 0
            if extra != 0 and not hit_ok:
                self._add(
                    "scheduled_consistent",
                    rid,
                    ev,
                    (r.computed_seq, ev.seq),
                    f"scheduled {n} tokens, num_computed_tokens advanced by {advanced}",
                )
        for r in self._touched:
            if r.request_id in scheduled or r.reverted or r.status is _P:
                continue
            if r.computed > r.start_computed and not (caching and r.admitted_in_step):
                self._add(
                    "scheduled_consistent",
                    r.request_id,
                    ev,
                    (r.computed_seq, ev.seq),
                    f"num_computed_tokens advanced by {r.computed - r.start_computed} "
                    f"but nothing was scheduled",
                )

    def _check_released(self, ev: Event) -> None:
        for r in self._just_finished:
            if r.blocks:
                self._add(
                    "request_blocks",
                    r.request_id,
                    ev,
                    (r.status_seq, r.blocks_seq, ev.seq),
                    f"finished as {r.status.name} but still holds {r.blocks} blocks",
                )
                # Reported once: it is no longer a holder to re-check every step.
                self._holders.pop(r.request_id, None)
        self._just_finished.clear()

    def _check_kv(self, ev: StepFinished, cfg: EngineConfigured) -> None:
        usable = cfg.num_gpu_blocks - 1
        free, used = ev.num_free_blocks, ev.num_used_blocks
        problem = None
        if free < 0 or used < 0 or free + used != usable:
            problem = f"{used} used + {free} free blocks, {usable} usable"
        elif not cfg.enable_prefix_caching and used != self._held_total:
            problem = f"{used} blocks used, but requests hold {self._held_total}"
        elif cfg.enable_prefix_caching and used > self._held_total:
            # Shared prefix blocks count once in `used` and once per holder.
            problem = f"{used} blocks used, more than the {self._held_total} requests hold"
        if problem is not None:
            self._add("kv_accounting", None, ev, (ev.seq,), problem)

    # -- end of stream ----------------------------------------------------------

    def finish(self) -> list[Violation]:
        """Run the end-of-stream checks (once the engine has drained); return every violation."""
        if self._done:
            return self.violations
        self._done = True
        last = self._last_step_finished
        step = last.step if last is not None else 0
        anchor: Event | None = last
        for r in list(self._live.values()):
            self._report(
                "all_finished",
                r.request_id,
                step,
                (r.added_seq, r.status_seq),
                f"never finished (last status {r.status.name})",
            )
        if anchor is not None:
            self._check_released(anchor)
        for rid, r in self._holders.items():
            self._report(
                "kv_drained",
                rid,
                step,
                (r.blocks_seq,),
                f"still holds {r.blocks} blocks at the end",
            )
        cfg = self._config
        if last is not None and cfg is not None and not self._kv_changed_since_step:
            usable = cfg.num_gpu_blocks - 1
            if last.num_free_blocks != usable:
                self._report(
                    "kv_drained",
                    None,
                    step,
                    (last.seq,),
                    f"{last.num_free_blocks} of {usable} blocks free at the end",
                )
        return self.violations
