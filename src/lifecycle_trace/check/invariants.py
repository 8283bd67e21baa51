"""The event rules: each event checked against the bounds of vLLM 0.22.1's scheduler.

:class:`EventRules` checks each event against the state of the requests
before it, as the audit fold (:class:`~lifecycle_trace.fold.audit.AuditFold`)
rebuilds it, then lets the fold take the event: O(1) work per event, plus
O(running requests) at each ``StepFinished``. Its rules are
named in :data:`EVENT_RULES`; :class:`~lifecycle_trace.check.InvariantChecker`
runs them together with the decision rules and reports both as
:class:`~lifecycle_trace.check.report.Violation` s.
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Iterable
from collections.abc import Iterator
from collections.abc import Mapping
from collections.abc import Sequence
from types import MappingProxyType
from typing import Any
from typing import TypeAlias

from lifecycle_trace.check.report import Violation
from lifecycle_trace.fold.audit import FINISHED_KEPT
from lifecycle_trace.fold.audit import AuditFold
from lifecycle_trace.fold.audit import AuditState
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
_CAPPED = RequestStatus.FINISHED_LENGTH_CAPPED
_ABORTED = RequestStatus.FINISHED_ABORTED

LEGAL_TRANSITIONS: frozenset[tuple[RequestStatus, RequestStatus]] = frozenset(
    {
        (_W, _R),  # admitted
        (_R, _P),  # evicted
        (_P, _R),  # re-admitted
        (_R, RequestStatus.FINISHED_STOPPED),  # EOS, stop token or stop string
        (_R, _CAPPED),  # max_tokens or max_model_len
        *((status, _ABORTED) for status in (_W, _R, _P)),  # aborted in any live status
    }
)
"""Every status change vLLM 0.22.1's scheduler makes; anything else is a bug."""

ASYNC_TRANSITIONS: frozenset[tuple[RequestStatus, RequestStatus]] = frozenset(
    {(_P, RequestStatus.FINISHED_STOPPED), (_P, _CAPPED)}
)
"""Legal only under async scheduling: a batch in flight when its request was
preempted still delivers its token, which may stop the request."""

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
        "on preemption",
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

_OTHER_COUNTERS = frozenset({"num_cached_tokens", "num_preemptions", "num_output_placeholders"})
"""The counters no rule but ``counter_consistent`` reads."""

Finding: TypeAlias = tuple[str, tuple[int, ...], str]
"""A broken rule as a check finds it: its name, the events it cites besides the one
being checked, and the message."""


def _limit(config: EngineConfigured | None) -> str:
    return f", max_model_len {config.max_model_len}" if config is not None else ""


class EventRules:
    """A bus handler that checks every event against :data:`EVENT_RULES`.

    Subscribe it before the first request (``engine.bus.subscribe(checker)``)
    or feed it a stored log; read ``violations`` at any time and call
    :meth:`finish` once the stream is complete (the engine drained) for the
    end-of-stream checks. It never raises: a broken invariant becomes a
    :class:`Violation`, so it is safe on a live engine. ``fold`` is the
    requests' state as the events so far set it.

    Each check yields :data:`Finding` s; a handler reports them, citing the
    event it checks.
    """

    def __init__(self) -> None:
        self.violations: list[Violation] = []
        self.fold = AuditFold()
        self._next_seq: int | None = None
        self._last_step = -1
        self._in_step = False
        self._preempted_in_step: int | None = None
        # Lives finished after this sequence number are not yet checked for held blocks.
        self._released_seq = -1
        self._kv_changed_since_step = False
        self._done = False
        self._dispatch: dict[type[Event], Callable[[Any], Iterable[Finding]]] = {
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
        """Check one event against the state before it, then fold it in (the bus handler)."""
        self.check_event(event)
        self.fold.feed(event)

    def check_event(self, event: Event) -> None:
        """Check one event against the state before it, leaving the fold as it is."""
        seq = event.seq
        step = event.step
        # One comparison each on the hot path; the first event and any
        # disorder take the slow path.
        if seq != self._next_seq or step < self._last_step:
            self._report_all(None, event, self._check_header(event))
        self._next_seq = seq + 1
        self._last_step = step
        handler = self._dispatch.get(type(event))
        if handler is not None:
            self._report_all(getattr(event, "request_id", None), event, handler(event))

    def _report_all(
        self, request_id: str | None, event: Event, findings: Iterable[Finding]
    ) -> None:
        for rule, seqs, message in findings:
            self._add(rule, request_id, event, (*seqs, event.seq), message)

    def _check_header(self, event: Event) -> Iterator[Finding]:
        seq = event.seq
        expected = self._next_seq
        if expected is None:
            if type(event) is not EngineConfigured:
                yield "engine_configured", (), "the log does not start with EngineConfigured"
        elif seq != expected:
            yield "event_order", (), f"sequence number {seq}, expected {expected}"
        if event.step < self._last_step:
            yield "event_order", (), f"step {event.step} after step {self._last_step}"

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

    def _request(self, event: Any) -> tuple[AuditState | None, Sequence[Finding]]:
        """The unfinished life ``event`` names, or None and why there is none."""
        t = self.fold.known(event.request_id)
        if t is not None and t.finish_status is None:
            return t, ()
        kind = type(event).__name__
        if t is not None:
            message = f"{kind} after the request finished as {t.status.name}"
            return None, [("finished_is_final", (t.status_seq,), message)]
        return None, [
            (
                "request_identity",
                (),
                f"{kind} for a request that was never added "
                f"(or finished more than {FINISHED_KEPT} requests ago)",
            )
        ]

    # -- events ---------------------------------------------------------------

    def _on_configured(self, ev: EngineConfigured) -> Iterator[Finding]:
        config = self.fold.config
        if config is not None:
            yield "engine_configured", (config.seq,), "EngineConfigured emitted twice"

    def _on_added(self, ev: RequestAdded) -> Iterator[Finding]:
        old = self.fold.state(ev.request_id)
        if old is not None and old.finish_status is None:
            yield "request_identity", (old.added_seq,), "a live request id was added again"

    def _on_status(self, ev: StatusChanged) -> Iterator[Finding]:
        t, findings = self._request(ev)
        yield from findings
        if t is None:
            return
        old, new = t.status, ev.new_status
        if ev.old_status is not old:
            yield (
                "status_consistent",
                (t.status_seq,),
                f"old_status {ev.old_status.name}, but the log last set {old.name}",
            )
        config = self.fold.config
        if (old, new) not in LEGAL_TRANSITIONS and not (
            (old, new) in ASYNC_TRANSITIONS and config is not None and config.async_scheduling
        ):
            yield "legal_transition", (t.status_seq,), f"{old.name} -> {new.name}"
        log = (t.num_computed_tokens, t.num_tokens, t.num_output_tokens)
        carried = (ev.num_computed_tokens, ev.num_tokens, ev.num_output_tokens)
        if carried != log:
            yield (
                "counter_consistent",
                (t.computed_seq, t.tokens_seq),
                f"StatusChanged carries computed/tokens/outputs {'/'.join(map(str, carried))}, "
                f"the log says {'/'.join(map(str, log))}",
            )
        if old is _R and new is _P:
            yield from self._check_victim(t)
        if new is _R:
            yield from self._admit(t)
        elif new is _P:
            if self._in_step:
                self._preempted_in_step = ev.seq
        elif new > _P:
            yield from self._finish(t, new)

    def _check_victim(self, t: AuditState) -> Iterator[Finding]:
        config = self.fold.config
        if config is not None and config.policy == "priority":
            # vLLM: max(running, key=(priority, arrival_time)); arrival is add order here.
            victim = max(self.fold.running.values(), key=lambda q: (q.priority, q.life))
            if victim is not t:
                yield (
                    "preempt_last",
                    (),
                    f"preempted with (priority, arrival) ({t.priority}, {t.life}), but "
                    f"{victim.request_id} ran with ({victim.priority}, {victim.life})",
                )
            return
        last = self.fold.last_running()
        if last is not None and last is not t:
            message = f"preempted, but {last.request_id} was behind it in the running queue"
            yield "preempt_last", (), message

    def _admit(self, t: AuditState) -> Iterator[Finding]:
        if self._preempted_in_step is not None:
            seqs = (self._preempted_in_step,)
            yield "no_admission_after_preemption", seqs, "admitted in a step that preempted"
        if t.status is _P and t.num_computed_tokens != 0:
            yield (
                "preempted_reset",
                (t.computed_seq,),
                f"re-admitted with num_computed_tokens {t.num_computed_tokens}, not 0",
            )
        config = self.fold.config
        running = self.fold.num_running + (t.status is not _R)
        if config is not None and running > config.max_num_seqs:
            message = f"{running} running requests, max_num_seqs {config.max_num_seqs}"
            yield "max_num_seqs", (), message

    def _finish(self, t: AuditState, new: RequestStatus) -> Iterator[Finding]:
        if new is _ABORTED:
            return
        tokens, outputs = t.num_tokens, t.num_output_tokens
        config = self.fold.config
        at_model_len = config is not None and tokens >= config.max_model_len
        if outputs < t.min_tokens and not at_model_len:
            yield (
                "min_tokens",
                (t.tokens_seq,),
                f"finished as {new.name} with {outputs} outputs, min_tokens {t.min_tokens}",
            )
        if new is _CAPPED and outputs < t.max_tokens and not at_model_len:
            yield (
                "length_cap",
                (t.tokens_seq,),
                f"FINISHED_LENGTH_CAPPED with {outputs} of {t.max_tokens} outputs and "
                f"{tokens} tokens",
            )

    def _on_counter(self, ev: CounterUpdated) -> Iterable[Finding]:
        t, findings = self._request(ev)
        if t is None:
            return findings
        counter = ev.counter
        if counter == "num_computed_tokens":
            return self._computed(t, ev)
        if counter == "num_tokens":
            return self._sampled(t, ev)
        known = getattr(t, counter) if counter in _OTHER_COUNTERS else ev.old
        if ev.old != known:
            message = f"{counter} goes from {ev.old}, the log last gave {known}"
            return [("counter_consistent", (), message)]
        return ()

    def _computed(self, t: AuditState, ev: CounterUpdated) -> Iterator[Finding]:
        old, new = ev.old, ev.new
        computed, tokens = t.num_computed_tokens, t.num_tokens
        if old != computed:
            message = f"num_computed_tokens goes from {old}, the log last gave {computed}"
            yield "counter_consistent", (t.computed_seq,), message
        # The one legal decrease: the reset to 0 on preemption.
        if new < old and not (new == 0 and t.status is _P):
            yield (
                "computed_monotonic",
                (t.computed_seq,),
                f"num_computed_tokens decreased from {old} to {new} while {t.status.name}",
            )
        config = self.fold.config
        placeholders = t.num_output_placeholders
        too_long = config is not None and new >= config.max_model_len
        if new < 0 or new > tokens + placeholders or too_long:
            yield (
                "computed_bounds",
                (t.tokens_seq,),
                f"num_computed_tokens {new} with num_tokens {tokens} and "
                f"{placeholders} output placeholders{_limit(config)}",
            )

    def _sampled(self, t: AuditState, ev: CounterUpdated) -> Iterator[Finding]:
        tokens = t.num_tokens
        if ev.old != tokens:
            message = f"num_tokens goes from {ev.old}, the log last gave {tokens}"
            yield "counter_consistent", (t.tokens_seq,), message
        new = ev.new
        start_tokens = self.fold.step_start(t)[1]
        if new != ev.old + 1 or new - start_tokens > 1:
            message = f"num_tokens went from {start_tokens} to {new} in one step"
            yield "decode_advance", (t.tokens_seq,), message
        outputs = new - t.num_prompt_tokens
        config = self.fold.config
        if outputs > t.max_tokens or (config is not None and new > config.max_model_len):
            yield (
                "output_bounds",
                (t.added_seq,),
                f"{outputs} outputs ({new} tokens), max_tokens {t.max_tokens}{_limit(config)}",
            )

    def _on_allocated(self, ev: BlocksAllocated) -> Sequence[Finding]:
        t, findings = self._request(ev)
        if t is not None:
            self._kv_changed_since_step = True
        return findings

    def _on_freed(self, ev: BlocksFreed) -> Iterator[Finding]:
        t = self.fold.known(ev.request_id)
        if t is None:
            yield from self._request(ev)[1]
            return
        if ev.num_blocks != t.num_blocks:
            message = f"freed {ev.num_blocks} blocks, but holds {t.num_blocks}"
            yield "request_blocks", (t.blocks_seq,), message
        self._kv_changed_since_step = True

    def _on_step_started(self, ev: StepStarted) -> Iterator[Finding]:
        self._check_released(ev)
        self._in_step = True
        self._preempted_in_step = None
        yield from self._check_summary(ev, "StepStarted")

    def _check_summary(self, ev: StepStarted | StepFinished, kind: str) -> Iterator[Finding]:
        running, waiting = self.fold.num_running, self.fold.num_waiting
        if ev.num_running != running or ev.num_waiting != waiting:
            yield (
                "step_summary",
                (),
                f"{kind} says {ev.num_running} running, {ev.num_waiting} waiting; the log "
                f"says {running} and {waiting}",
            )

    def _on_step_finished(self, ev: StepFinished) -> list[Finding]:
        # The step's own findings (no request) first, as the checks run.
        fold = self.fold
        config = fold.config
        self._report_all(None, ev, self._check_summary(ev, "StepFinished"))
        if config is not None:
            self._check_budget(ev, config)
        self._check_advances(ev, config)
        for t in fold.running.values():
            self._report_all(t.request_id, ev, self._check_running(t, config))
        last = fold.last_step_finished
        since = last.seq if last is not None else -1
        for t in fold.touched:
            if t.status is _P and t.status_seq > since and t.num_computed_tokens != 0:
                message = f"preempted but num_computed_tokens is {t.num_computed_tokens}"
                self._report_all(t.request_id, ev, [("preempted_reset", (t.status_seq,), message)])
        self._check_released(ev)
        for rid, t in fold.holders.items():
            if t.status is not _R and t.finish_status is None:
                message = f"holds {t.num_blocks} blocks while {t.status.name}"
                seqs = (t.blocks_seq, t.status_seq)
                self._report_all(rid, ev, [("request_blocks", seqs, message)])
        if config is not None:
            self._report_all(None, ev, self._check_kv(ev, config))
        self._in_step = False
        self._preempted_in_step = None
        self._kv_changed_since_step = False
        return []

    def _check_running(self, t: AuditState, config: EngineConfigured | None) -> Iterator[Finding]:
        computed, tokens = t.num_computed_tokens, t.num_tokens
        placeholders = t.num_output_placeholders
        if t.decoding and computed != tokens + placeholders - 1:
            yield (
                "decode_gap",
                (t.computed_seq, t.tokens_seq),
                f"decoding with num_computed_tokens {computed}, num_tokens {tokens}, "
                f"{placeholders} output placeholders",
            )
        if config is not None and t.num_blocks * config.block_size < computed:
            yield (
                "request_blocks",
                (t.blocks_seq, t.computed_seq),
                f"{t.num_blocks} blocks of {config.block_size} for {computed} computed tokens",
            )
        outputs = t.num_output_tokens
        if outputs >= t.max_tokens or (config is not None and tokens >= config.max_model_len):
            yield (
                "length_cap",
                (t.tokens_seq,),
                f"still running with {outputs} outputs (max_tokens "
                f"{t.max_tokens}) and {tokens} tokens",
            )

    def _check_budget(self, ev: StepFinished, config: EngineConfigured) -> None:
        scheduled = ev.num_scheduled_tokens
        total = sum(scheduled.values())
        if total > config.max_num_batched_tokens:
            message = (
                f"{total} tokens scheduled, max_num_batched_tokens {config.max_num_batched_tokens}"
            )
            self._report_all(None, ev, [("token_budget", (), message)])
        threshold = config.long_prefill_token_threshold
        if threshold > 0:
            for rid, n in scheduled.items():
                if n > threshold:
                    message = f"{n} tokens scheduled, long_prefill_token_threshold {threshold}"
                    self._report_all(rid, ev, [("long_prefill_threshold", (), message)])

    def _check_advances(self, ev: StepFinished, config: EngineConfigured | None) -> None:
        fold = self.fold
        scheduled = ev.num_scheduled_tokens
        caching = config is not None and config.enable_prefix_caching
        block_size = config.block_size if config is not None else 1
        for rid, n in scheduled.items():
            t = fold.known(rid)
            if t is None:
                self._report_all(rid, ev, [("request_identity", (), "scheduled but never added")])
                continue
            advanced = t.num_computed_tokens - fold.step_start(t)[0]
            extra = advanced - n
            # A request admitted this step may also jump by its prefix-cache hit.
            hit_ok = caching and fold.admitted_in_step(t) and extra > 0 and extra % block_size == 0
            if extra != 0 and not hit_ok:
                message = f"scheduled {n} tokens, num_computed_tokens advanced by {advanced}"
                self._report_all(rid, ev, [("scheduled_consistent", (t.computed_seq,), message)])
        for t in fold.touched:
            if t.request_id in scheduled or t.status is _P:
                continue
            advanced = t.num_computed_tokens - t.start_computed
            if advanced > 0 and not (caching and t.admitted_in_step):
                message = f"num_computed_tokens advanced by {advanced} but nothing was scheduled"
                finding = ("scheduled_consistent", (t.computed_seq,), message)
                self._report_all(t.request_id, ev, [finding])

    def _check_released(self, ev: Event) -> None:
        since = self._released_seq
        self._released_seq = ev.seq
        for t in self.fold.touched:
            if t.finish_status is not None and t.status_seq > since and t.num_blocks:
                message = f"finished as {t.status.name} but still holds {t.num_blocks} blocks"
                finding = ("request_blocks", (t.status_seq, t.blocks_seq), message)
                self._report_all(t.request_id, ev, [finding])

    def _check_kv(self, ev: StepFinished, config: EngineConfigured) -> Iterator[Finding]:
        usable = config.num_gpu_blocks - 1
        free, used = ev.num_free_blocks, ev.num_used_blocks
        held = self.fold.num_blocks_held
        if free < 0 or used < 0 or free + used != usable:
            yield "kv_accounting", (), f"{used} used + {free} free blocks, {usable} usable"
        elif not config.enable_prefix_caching and used != held:
            yield "kv_accounting", (), f"{used} blocks used, but requests hold {held}"
        elif config.enable_prefix_caching and used > held:
            # Shared prefix blocks count once in `used` and once per holder.
            yield "kv_accounting", (), f"{used} blocks used, more than the {held} requests hold"

    # -- end of stream ----------------------------------------------------------

    def finish(self) -> list[Violation]:
        """Run the end-of-stream checks (once the engine has drained); return every violation."""
        if self._done:
            return self.violations
        self._done = True
        fold = self.fold
        last = fold.last_step_finished
        step = last.step if last is not None else 0
        for t in fold.unfinished():
            message = f"never finished (last status {t.status.name})"
            self._report("all_finished", t.request_id, step, (t.added_seq, t.status_seq), message)
        if last is not None:
            self._check_released(last)
        for rid, t in fold.holders.items():
            # A finished holder was reported at its finish (with no step, it was not).
            if t.finish_status is None or last is None:
                message = f"still holds {t.num_blocks} blocks at the end"
                self._report("kv_drained", rid, step, (t.blocks_seq,), message)
        config = fold.config
        if last is not None and config is not None and not self._kv_changed_since_step:
            usable = config.num_gpu_blocks - 1
            if last.num_free_blocks != usable:
                message = f"{last.num_free_blocks} of {usable} blocks free at the end"
                self._report("kv_drained", None, step, (last.seq,), message)
        return self.violations
