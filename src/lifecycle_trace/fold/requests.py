"""The one fold: every request's life, rebuilt from the event log.

A :class:`RequestState` is what the log has said about one life of one
request so far: its status, every counter (``num_computed_tokens``,
``num_tokens``, ``num_cached_tokens``, ``num_preemptions``,
``num_output_placeholders``), the KV blocks it holds, what its RequestAdded
asked for (its priority too), when it arrived, was first scheduled, got its first and last token
and finished, and its history step by step. A life is named by
:class:`RequestKey`, ``(engine_id, request_id, life)``, where ``life`` is the
sequence number of the RequestAdded that began it: a request id reused after
its request finished starts a new life.

:class:`RequestFold` folds one engine's events in order (fed one at a time,
subscribed to a bus, or a whole log at once). Besides each life it keeps the
scheduler's queues as the log implies them: the ``running`` list in order and
the ``waiting`` queue with preempted requests at its head. It either keeps
every life (``keep_finished=True``, for a log in memory) or retires each
finished life at the end of the step it finished in, handing it to
``on_retire`` and forgetting it, so memory follows the number of live requests
however long the log. :class:`LogFold` does the same for the records of a log
of several engines, one :class:`RequestFold` per engine.

Timelines, status intervals, stats, the lab's event-derived trace, slices,
every exporter and the checker (through
:class:`~lifecycle_trace.fold.audit.AuditFold`) are views of these states;
none keeps request state of its own.

Cost: O(1) per event (plus O(waiting) for the rare removal from the middle of
the waiting queue). A decode step's two counter updates take the inlined path
of :meth:`RequestFold.feed_all`.
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Callable
from collections.abc import Iterable
from collections.abc import Iterator
from collections.abc import Mapping
from collections.abc import Sequence
from typing import Any
from typing import NamedTuple
from typing import TypeAlias
from typing import cast

from lifecycle_trace.fold._life import FinishedLife
from minivllm.events import COUNTERS
from minivllm.events import BlocksAllocated
from minivllm.events import BlocksCached
from minivllm.events import BlocksFreed
from minivllm.events import CounterUpdated
from minivllm.events import EngineConfigured
from minivllm.events import Event
from minivllm.events import RequestAdded
from minivllm.events import StatusChanged
from minivllm.events import StepFinished
from minivllm.events import StepStarted
from minivllm.request import RequestStatus

__all__ = [
    "LogFold",
    "Record",
    "RequestFold",
    "RequestKey",
    "RequestState",
    "Source",
    "engine_runs",
    "peek_records",
]

Record: TypeAlias = tuple[str, Event]
"""An event and the id of the engine that emitted it (how a merged log is read)."""

Source: TypeAlias = Iterable[Event] | Iterable[Record]
"""What the views accept: one engine's events, or ``(engine_id, event)`` records of several."""

_WAITING = RequestStatus.WAITING
_RUNNING = RequestStatus.RUNNING
_PREEMPTED = RequestStatus.PREEMPTED


_ASKED = (
    "num_prompt_tokens",
    "max_tokens",
    "min_tokens",
    "stop_token_ids",
    "ignore_eos",
    "priority",
    "temperature",
    "top_p",
    "n",
)
"""The fields of a RequestAdded a request's state keeps, under the same names."""


History: TypeAlias = tuple[
    tuple[int, ...], tuple[RequestStatus, ...], tuple[int, ...], tuple[int, ...], tuple[int, ...]
]
"""A life's end state at every step it changed: steps, statuses, computed, tokens, placeholders."""


class RequestKey(NamedTuple):
    """Names one life of one request: a request id may be reused once its request finished."""

    engine_id: str
    request_id: str
    life: int
    """The sequence number of the RequestAdded that began this life."""


class RequestState(FinishedLife):
    """One life of one request as the log has told it so far (live state: read, don't write).

    Counters carry vLLM's ``Request`` names. ``num_cached_tokens`` is
    minivllm's own counter: the prompt tokens found in the prefix cache when
    the request was first admitted (vLLM 0.22.1 reports them in its
    first-prefill stats, not on ``Request``). Times are nanoseconds on the
    bus clock, None where the request never reached that point.

    The history is kept compressed: ``change_steps[i]`` is a step at whose
    end the request's ``(status, num_computed_tokens, num_tokens,
    num_output_placeholders)`` was ``(change_statuses[i], change_computed[i],
    change_tokens[i], change_placeholders[i])``, the current values being
    those of ``step``; ``status_steps[i]``, ``statuses[i]`` and
    ``status_ns[i]`` say when (step, nanoseconds) it entered each status, from
    WAITING on. (Parallel lists of values the events already hold: a long log
    allocates nothing per status change.)
    """

    __slots__ = (
        *COUNTERS,
        *_ASKED,
        "added_step",
        "arrival_ns",
        "change_computed",
        "change_placeholders",
        "change_statuses",
        "change_steps",
        "change_tokens",
        "engine_id",
        "finish_status",
        "finished_ns",
        "first_scheduled_ns",
        "first_token_ns",
        "first_token_seq",
        "first_token_step",
        "index",
        "last_token_ns",
        "life",
        "num_blocks",
        "request_id",
        "status",
        "status_ns",
        "status_steps",
        "statuses",
        "step",
        "stop_reason",
    )

    # The counters (minivllm.events.COUNTERS), as the log last set them.
    num_computed_tokens: int
    num_tokens: int
    num_cached_tokens: int
    num_preemptions: int
    num_output_placeholders: int
    # What its RequestAdded asked for, as it came.
    num_prompt_tokens: int
    max_tokens: int
    min_tokens: int
    stop_token_ids: tuple[int, ...]
    ignore_eos: bool
    priority: int
    temperature: float
    top_p: float
    n: int

    def __init__(self, e: RequestAdded, engine_id: str, index: int) -> None:
        self.engine_id = engine_id
        self.request_id = e.request_id
        self.life = e.seq
        self.index = index  # order of addition within its engine's fold, from 0
        for name in _ASKED:
            setattr(self, name, getattr(e, name))
        for counter in COUNTERS:
            setattr(self, counter, 0)
        self.num_tokens = e.num_prompt_tokens
        self.added_step = e.step
        self.arrival_ns = e.ts_ns
        self.status = _WAITING
        self.num_blocks = 0
        self.stop_reason: int | str | None = None
        self.finish_status: RequestStatus | None = None
        self.finished_ns: int | None = None
        self.first_scheduled_ns: int | None = None
        self.first_token_ns: int | None = None
        self.first_token_step: int | None = None
        self.first_token_seq: int | None = None
        self.last_token_ns: int | None = None
        # The step whose end state is being built; earlier ones are in change_*.
        self.step = e.step
        self.change_steps: list[int] = []
        self.change_statuses: list[RequestStatus] = []
        self.change_computed: list[int] = []
        self.change_tokens: list[int] = []
        self.change_placeholders: list[int] = []
        self.status_steps: list[int] = [e.step]
        self.statuses: list[RequestStatus] = [_WAITING]
        self.status_ns: list[int] = [e.ts_ns]

    def __repr__(self) -> str:
        return (
            f"RequestState({self.engine_id!r}, {self.request_id!r}, life={self.life}, "
            f"{self.status.name}, computed={self.num_computed_tokens}, tokens={self.num_tokens})"
        )

    @property
    def key(self) -> RequestKey:
        """``(engine_id, request_id, life)``."""
        return RequestKey(self.engine_id, self.request_id, self.life)

    @property
    def num_output_tokens(self) -> int:
        """Output tokens sampled so far."""
        return self.num_tokens - self.num_prompt_tokens

    @property
    def finished_step(self) -> int | None:
        """The step in which (or, for an abort, before which) the request finished."""
        return self.step if self.finish_status is not None else None

    @property
    def status_changes(self) -> list[tuple[int, RequestStatus, int]]:
        """``(step, status, ts_ns)`` for every status entered, from WAITING on."""
        return list(zip(self.status_steps, self.statuses, self.status_ns, strict=True))

    def history(
        self,
    ) -> tuple[
        tuple[int, ...],
        tuple[RequestStatus, ...],
        tuple[int, ...],
        tuple[int, ...],
        tuple[int, ...],
    ]:
        """``change_*`` with the current step appended: the end state of every changed step.

        In the order steps, statuses, computed, tokens, placeholders.
        """
        return (
            (*self.change_steps, self.step),
            (*self.change_statuses, self.status),
            (*self.change_computed, self.num_computed_tokens),
            (*self.change_tokens, self.num_tokens),
            (*self.change_placeholders, self.num_output_placeholders),
        )

    def _next_step(self, step: int) -> None:
        self.change_steps.append(self.step)
        self.change_statuses.append(self.status)
        self.change_computed.append(self.num_computed_tokens)
        self.change_tokens.append(self.num_tokens)
        self.change_placeholders.append(self.num_output_placeholders)
        self.step = step


StateCallback = Callable[[RequestState], None]


def _priority_order(t: RequestState) -> tuple[int, int]:
    # vLLM orders by (priority, arrival_time, request_id); RequestAdded events
    # come in the order of the arrival times the engine's clock gave them.
    return t.priority, t.life


class RequestFold:
    """One engine's requests folded from its events; see the module docstring.

    ``engine_id`` names the engine (by default the log's EngineConfigured).
    The callbacks see a life as the log changes it: ``on_status`` after each
    status change, ``on_first_token`` at its first sampled token,
    ``on_next_token`` at each later one (with its ``CounterUpdated``, before
    the state takes it, so ``last_token_ns`` is still the token before's),
    ``on_finish`` at its finishing status change, and ``on_retire`` at the
    end of the step it finished in (a ``StepFinished``, the same id added
    again, or :meth:`retire` at the end of a stream), after which the fold
    forgets it unless ``keep_finished``. ``select`` (given a
    RequestAdded) leaves requests out: their events are skipped. With
    ``strict`` (the default) an event naming a request the log never added,
    changing one that finished or naming an unknown counter raises
    ``ValueError``; otherwise it is skipped, which is what a reader of a
    damaged log wants. A ``StatusChanged``'s counts are checksums: the fold
    takes counters from ``CounterUpdated`` alone, and a request's blocks stay
    counted in ``num_blocks_held`` until a ``BlocksFreed`` frees them.
    With ``history=False`` the states keep no per-step history (``change_*``
    stay empty; the status history is kept): enough for every view but
    timelines, and cheaper.
    """

    def __init__(
        self,
        engine_id: str | None = None,
        *,
        on_status: StateCallback | None = None,
        on_first_token: StateCallback | None = None,
        on_next_token: Callable[[RequestState, CounterUpdated], None] | None = None,
        on_finish: StateCallback | None = None,
        on_retire: StateCallback | None = None,
        keep_finished: bool = True,
        select: Callable[[RequestAdded], bool] | None = None,
        strict: bool = True,
        history: bool = True,
    ) -> None:
        self._engine_id = engine_id
        self._history = history
        self.config: EngineConfigured | None = None
        self._priority_policy = False
        self.last_step_finished: StepFinished | None = None
        self._on_status_change = on_status
        self._on_first_token = on_first_token
        self._on_next_token = on_next_token
        self._on_finish = on_finish
        self._on_retire = on_retire
        self._keep = keep_finished
        self._select = select
        self._strict = strict and select is None
        self._live: dict[str, RequestState] = {}
        self._all: list[RequestState] | None = [] if keep_finished else None
        self._finished: list[RequestState] = []
        self._running: dict[str, RequestState] = {}
        self._waiting: deque[RequestState] = deque()
        self.num_added = 0
        self.num_selected = 0
        self.num_finished = 0
        self.num_blocks_held = 0
        self.last_step = 0
        self.last_ts_ns = 0
        self._handlers: dict[type[Event], Callable[[Any], None]] = {
            CounterUpdated: self._on_counter,
            StatusChanged: self._on_status,
            RequestAdded: self._on_added,
            StepStarted: self._on_step,
            StepFinished: self._on_step_finished,
            BlocksAllocated: self._on_allocated,
            BlocksFreed: self._on_freed,
            BlocksCached: self._on_cached,
            EngineConfigured: self._on_config,
        }

    # -- what the fold knows ------------------------------------------------------

    @property
    def engine_id(self) -> str:
        """The engine's id: as given, else the log's EngineConfigured ("" before it)."""
        if self._engine_id is not None:
            return self._engine_id
        return "" if self.config is None else self.config.engine_id

    @property
    def live(self) -> Mapping[str, RequestState]:
        """The current life of each request id not yet retired, in order added."""
        return self._live

    @property
    def running(self) -> Mapping[str, RequestState]:
        """The scheduler's running list as the log implies it, in order."""
        return self._running

    @property
    def waiting(self) -> Sequence[RequestState]:
        """The waiting queue as the log implies it, in the order the scheduler serves it.

        First-come-first-served: preempted requests first (the latest
        preempted at the head), then by arrival. Under the priority policy
        (the log's EngineConfigured says which): by ``(priority, arrival)``,
        vLLM's ``Request.__lt__``, arrival being the order of the RequestAdded
        events.
        """
        if self._priority_policy:
            return sorted(self._waiting, key=_priority_order)
        return self._waiting

    @property
    def finished(self) -> Sequence[RequestState]:
        """Lives that finished since the last retirement, in finishing order."""
        return self._finished

    @property
    def num_running(self) -> int:
        """Requests in the running list."""
        return len(self._running)

    @property
    def num_waiting(self) -> int:
        """Requests waiting (preempted ones included, as in vLLM)."""
        return len(self._waiting)

    @property
    def num_live(self) -> int:
        """Lives not yet retired."""
        return len(self._live)

    def states(self) -> list[RequestState]:
        """Every life held, in order added: with ``keep_finished`` all, else the unretired."""
        if self._all is not None:
            return list(self._all)
        return list(self._live.values())

    # -- feeding --------------------------------------------------------------------

    def feed(self, event: Event) -> None:
        """Fold one event in."""
        try:
            handler = self._handlers[type(event)]
        except KeyError:
            raise TypeError(f"not an engine event: {event!r}") from None
        handler(event)
        self.last_ts_ns = event.ts_ns

    __call__ = feed

    def feed_all(self, events: Iterable[Event]) -> None:
        """Fold events in, in order (the same fold as :meth:`feed`, with the hot path inlined)."""
        handlers = self._handlers
        live = self._live
        counter_updated = CounterUpdated
        on_counter = self._on_counter
        on_next_token = self._on_next_token
        e: Any = None
        history = self._history
        for e in events:
            # Nine events in ten are a decode step's two counter updates.
            if type(e) is counter_updated:
                t = live.get(e.request_id)
                if t is not None:
                    if e.step != t.step:
                        if history:  # the step's first change: the last one's end goes to history
                            t.change_steps.append(t.step)
                            t.change_statuses.append(t.status)
                            t.change_computed.append(t.num_computed_tokens)
                            t.change_tokens.append(t.num_tokens)
                            t.change_placeholders.append(t.num_output_placeholders)
                        t.step = e.step
                    counter = e.counter
                    if counter == "num_computed_tokens":
                        t.num_computed_tokens = e.new
                        continue
                    if counter == "num_tokens" and t.first_token_ns is not None:
                        if on_next_token is not None:
                            on_next_token(t, e)
                        t.num_tokens = e.new
                        t.last_token_ns = e.ts_ns
                        continue
                on_counter(e)
            else:
                handler = handlers.get(type(e))
                if handler is None:
                    raise TypeError(f"not an engine event: {e!r}")
                handler(e)
        if e is not None:
            self.last_ts_ns = e.ts_ns

    def retire(self) -> None:
        """Hand every finished life to ``on_retire`` now and forget it (the end of a stream)."""
        finished = self._finished
        if not finished:
            return
        live = self._live
        callback = self._on_retire
        for t in finished:
            if live.get(t.request_id) is t:
                del live[t.request_id]
            if callback is not None:
                callback(t)
        finished.clear()

    # -- handlers ---------------------------------------------------------------------

    def _new_state(self, e: RequestAdded, index: int) -> RequestState:
        return RequestState(e, self.engine_id, index)

    def _next_step(self, t: RequestState, step: int) -> None:
        if self._history:
            t._next_step(step)
        else:
            t.step = step

    def _state(self, e: Any) -> RequestState | None:
        t = self._live.get(e.request_id)
        if t is None and self._strict:
            raise ValueError(
                f"seq {e.seq}: {type(e).__name__} for request {e.request_id!r}, which the log "
                f"never added (does the log start mid-run?)"
            )
        return t

    def _on_counter(self, e: CounterUpdated) -> None:
        t = self._live.get(e.request_id) or self._state(e)
        if t is None:
            return
        if e.step != t.step:
            self._next_step(t, e.step)
        counter = e.counter
        if counter == "num_computed_tokens":
            t.num_computed_tokens = e.new
        elif counter == "num_tokens":
            if t.first_token_ns is not None and self._on_next_token is not None:
                self._on_next_token(t, e)
            t.num_tokens = e.new
            ts = e.ts_ns
            t.last_token_ns = ts
            if t.first_token_ns is None:
                t.first_token_ns = ts
                t.first_token_step = e.step
                t.first_token_seq = e.seq
                if self._on_first_token is not None:
                    self._on_first_token(t)
        elif counter == "num_preemptions":
            t.num_preemptions = e.new
        elif counter == "num_cached_tokens":
            t.num_cached_tokens = e.new
        elif counter == "num_output_placeholders":
            t.num_output_placeholders = e.new
        elif self._strict:
            raise ValueError(f"seq {e.seq}: unknown counter {counter!r}")

    def _on_status(self, e: StatusChanged) -> None:
        t = self._live.get(e.request_id) or self._state(e)
        if t is None:
            return
        if t.finish_status is not None:
            if self._strict:
                raise ValueError(
                    f"seq {e.seq}: StatusChanged for request {e.request_id!r} after it "
                    f"finished as {t.finish_status.name}"
                )
            return
        step = e.step
        if step != t.step:
            self._next_step(t, step)
        if step > self.last_step:
            self.last_step = step
        old, new = t.status, e.new_status
        # Each status change is one queue operation of the scheduler.
        if old is _RUNNING:
            del self._running[t.request_id]
        else:
            waiting = self._waiting
            if waiting and waiting[0] is t:
                waiting.popleft()
            else:
                waiting.remove(t)
        t.status = new
        t.status_steps.append(step)
        t.statuses.append(new)
        t.status_ns.append(e.ts_ns)
        if new is _RUNNING:
            self._running[t.request_id] = t
            if t.first_scheduled_ns is None:
                t.first_scheduled_ns = e.ts_ns
        elif new is _PREEMPTED:
            self._waiting.appendleft(t)
        elif new > _PREEMPTED:
            t.finish_status = new
            t.finished_ns = e.ts_ns
            t.stop_reason = e.stop_reason
            self.num_finished += 1
            self._finished.append(t)
        else:
            self._waiting.append(t)
        if self._on_status_change is not None:
            self._on_status_change(t)
        if t.finish_status is not None and self._on_finish is not None:
            self._on_finish(t)

    def _on_added(self, e: RequestAdded) -> None:
        rid = e.request_id
        old = self._live.get(rid)
        if old is not None:
            if old.finish_status is None:
                if self._strict:
                    raise ValueError(
                        f"seq {e.seq}: request id {rid!r} is added a second time while its "
                        f"request (added at seq {old.life}) is live"
                    )
                return
            self.retire()  # the id is reused before the step that finished it ended
        if e.step > self.last_step:
            self.last_step = e.step
        index = self.num_added
        self.num_added = index + 1
        if self._select is not None and not self._select(e):
            return
        self.num_selected += 1
        t = self._new_state(e, index)
        self._live[rid] = t
        if self._all is not None:
            self._all.append(t)
        self._waiting.append(t)

    def _on_step(self, e: StepStarted) -> None:
        if e.step > self.last_step:
            self.last_step = e.step

    def _on_step_finished(self, e: StepFinished) -> None:
        self.last_step_finished = e
        if e.step > self.last_step:
            self.last_step = e.step
        if self._finished:
            self.retire()

    def _on_allocated(self, e: BlocksAllocated) -> None:
        t = self._live.get(e.request_id) or self._state(e)
        if t is not None:
            n = e.num_new_blocks + e.num_cached_blocks
            t.num_blocks += n
            self.num_blocks_held += n

    def _on_freed(self, e: BlocksFreed) -> None:
        t = self._live.get(e.request_id) or self._state(e)
        if t is not None:
            self.num_blocks_held -= t.num_blocks
            t.num_blocks = 0

    def _on_cached(self, e: BlocksCached) -> None:
        pass  # which blocks hold which hashes: the checker's business, not a request's state

    def _on_config(self, e: EngineConfigured) -> None:
        self.config = e
        self._priority_policy = e.policy == "priority"


class LogFold:
    """A :class:`RequestFold` per engine, fed ``(engine_id, event)`` records in log order.

    Each engine's events go to its own fold, so request ids that repeat
    across the engines of a merged log never meet. The keyword arguments are
    each engine fold's (see :class:`RequestFold`); ``folds`` holds them by
    engine id, in order of first appearance.
    """

    def __init__(self, **fold_options: Any) -> None:
        self._options = fold_options
        self.folds: dict[str, RequestFold] = {}

    def fold(self, engine: str) -> RequestFold:
        """The fold of ``engine``, made on first use."""
        fold = self.folds.get(engine)
        if fold is None:
            fold = self.folds[engine] = RequestFold(engine or None, **self._options)
        return fold

    def feed(self, engine: str, event: Event) -> None:
        """Fold one record in."""
        self.fold(engine).feed(event)

    def feed_all(self, source: Source) -> None:
        """Fold one engine's events, or several engines' records, in order."""
        for engine, events in engine_runs(source)[1]:
            self.fold(engine).feed_all(events)

    def retire(self) -> None:
        """Retire every engine's finished lives now (the end of a stream)."""
        for fold in self.folds.values():
            fold.retire()

    def states(self) -> list[RequestState]:
        """Every engine's :meth:`RequestFold.states`, engine after engine."""
        return [t for fold in self.folds.values() for t in fold.states()]

    @property
    def num_added(self) -> int:
        """Requests added in all engines (selected or not)."""
        return sum(fold.num_added for fold in self.folds.values())

    @property
    def last_step(self) -> int:
        """The highest step of any engine."""
        return max((fold.last_step for fold in self.folds.values()), default=0)


def _engine_of(record: Record) -> str:
    return record[0]


def _event_of(record: Record) -> Event:
    return record[1]


def peek_records(source: Source) -> tuple[bool, Source]:
    """Whether ``source`` holds records (several engines' events), and ``source`` unconsumed."""
    items: Iterator[Any] = iter(source)
    first = next(items, None)
    if first is None:
        return False, ()
    return isinstance(first, tuple), itertools.chain((first,), items)


def engine_runs(source: Source) -> tuple[bool, Iterator[tuple[str, Iterator[Event]]]]:
    """Whether ``source`` holds records, and its events in runs of one engine.

    Each run is ``(engine_id, events)``; plain events are one run of the engine
    "" (a fold names it from the log's EngineConfigured). Consume each run
    before the next.
    """
    merged, items = peek_records(source)
    if merged:
        groups = itertools.groupby(cast(Iterable[Record], items), key=_engine_of)
        return True, ((engine, map(_event_of, group)) for engine, group in groups)
    return False, iter((("", iter(cast(Iterable[Event], items))),))
