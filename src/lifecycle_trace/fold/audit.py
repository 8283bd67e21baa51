"""The fold the checker reads: each life with the events that set its values.

A rule that finds a value wrong cites the event it contradicts, so an
:class:`AuditState` adds to :class:`~lifecycle_trace.fold.requests.RequestState`
the sequence number of the event that last set its status, its
``num_computed_tokens``, its ``num_tokens`` and its blocks; what the current
step changed (its values when the step first touched it, whether it was
admitted in it, whether it sampled since its last admission); and the token
and block ids the log names (its sampled tokens, the blocks it holds and
those of them it cached).

:class:`AuditFold` folds any stream, however malformed, without raising: an
event naming a request the log never added, or changing one that finished,
changes nothing (a ``BlocksFreed`` after the finish is the engine's order, and
is applied). A step here is the span up to each ``StepFinished``, the unit the
checker judges. Finished lives are remembered by request id, the latest
:data:`FINISHED_KEPT` of them, so memory stays bounded on a long stream.

The provenance costs a few stores per event, so it lives here, in a fold the
checker turns on, and not on the hot path of
:meth:`~lifecycle_trace.fold.requests.RequestFold.feed_all`.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from typing import Any
from typing import cast

from lifecycle_trace.fold.requests import RequestFold
from lifecycle_trace.fold.requests import RequestState
from minivllm.events import BlocksAllocated
from minivllm.events import BlocksCached
from minivllm.events import BlocksFreed
from minivllm.events import CounterUpdated
from minivllm.events import RequestAdded
from minivllm.events import StatusChanged
from minivllm.events import StepFinished
from minivllm.request import RequestStatus

__all__ = ["FINISHED_KEPT", "AuditFold", "AuditState"]

FINISHED_KEPT = 4096
"""How many finished lives the audit fold remembers by request id."""

_RUNNING = RequestStatus.RUNNING
_PREEMPTED = RequestStatus.PREEMPTED


class AuditState(RequestState):
    """A :class:`RequestState` that also says which event set each value, and this step's start."""

    __slots__ = (
        "admitted_in_step",
        "block_ids",
        "blocks_seq",
        "cached_block_ids",
        "computed_seq",
        "decoding",
        "output_token_ids",
        "stamp",
        "start_computed",
        "start_tokens",
        "status_seq",
        "tokens_seq",
    )

    def __init__(self, e: RequestAdded, engine_id: str, index: int) -> None:
        super().__init__(e, engine_id, index)
        seq = e.seq
        self.status_seq = seq
        self.computed_seq = seq
        self.tokens_seq = seq
        self.blocks_seq = seq
        # True once the request sampled a token since its last admission.
        self.decoding = False
        # As the log names them: the tokens sampled, the blocks held (prefix-cache
        # hits first, as allocated) and those of them cached since allocated.
        self.output_token_ids: list[int] = []
        self.block_ids: list[int] = []
        self.cached_block_ids: set[int] = set()
        # The step (count of StepFinished) that last touched it, and its values then.
        self.stamp = -1
        self.start_computed = 0
        self.start_tokens = 0
        self.admitted_in_step = False

    @property
    def added_seq(self) -> int:
        """The sequence number of the RequestAdded that began this life."""
        return self.life


class AuditFold(RequestFold):
    """A lenient :class:`RequestFold` of :class:`AuditState` s; see the module docstring.

    Besides the base fold's views: :attr:`touched` (the lives this step
    changed, in order), :attr:`holders` (the lives that hold blocks, by id),
    :meth:`known` (a life by id, live or recently finished), :attr:`recent`
    and :attr:`steps_finished`.
    """

    def __init__(self, engine_id: str | None = None) -> None:
        super().__init__(engine_id, keep_finished=False, strict=False, history=False)
        self.steps_finished = 0
        self.touched: list[AuditState] = []
        self._holders: dict[str, AuditState] = {}
        self._recent: dict[str, AuditState] = {}
        self._on_retire = self._remember

    # -- what the fold knows -------------------------------------------------------

    @property
    def holders(self) -> Mapping[str, AuditState]:
        """The lives holding KV blocks, by request id, in order of their first allocation."""
        return self._holders

    @property
    def running(self) -> Mapping[str, AuditState]:
        """The scheduler's running list as the log implies it, in order."""
        return cast("Mapping[str, AuditState]", self._running)

    def last_running(self) -> AuditState | None:
        """The request at the end of the running list: the FCFS policy's preemption victim."""
        return cast("AuditState | None", next(reversed(self._running.values()), None))

    @property
    def recent(self) -> Mapping[str, AuditState]:
        """The finished lives remembered by request id (at most :data:`FINISHED_KEPT`)."""
        return self._recent

    def unfinished(self) -> list[AuditState]:
        """The lives not finished yet, in order added."""
        return [cast(AuditState, t) for t in self._live.values() if t.finish_status is None]

    def state(self, request_id: str) -> AuditState | None:
        """The live (possibly finished, not yet retired) life of ``request_id``."""
        return cast("AuditState | None", self._live.get(request_id))

    def known(self, request_id: str) -> AuditState | None:
        """The life of ``request_id``: live, or one of the last finished ones; None if unknown."""
        t = self.state(request_id)
        return t if t is not None else self._recent.get(request_id)

    def step_start(self, t: AuditState) -> tuple[int, int]:
        """``(num_computed_tokens, num_tokens)`` of ``t`` when the current step first touched it."""
        if t.stamp == self.steps_finished:
            return t.start_computed, t.start_tokens
        return t.num_computed_tokens, t.num_tokens

    def admitted_in_step(self, t: AuditState) -> bool:
        """Whether ``t`` was admitted in the current step."""
        return t.stamp == self.steps_finished and t.admitted_in_step

    # -- folding ---------------------------------------------------------------------

    def _new_state(self, e: RequestAdded, index: int) -> RequestState:
        return AuditState(e, self.engine_id, index)

    def _remember(self, t: RequestState) -> None:
        state = cast(AuditState, t)
        state.output_token_ids = []  # judged at the finish: a remembered life needs no tokens
        self._recent[t.request_id] = state

    def _unfinished(self, e: Any) -> AuditState | None:
        t = self.state(e.request_id)
        return t if t is not None and t.finish_status is None else None

    def _touch(self, e: StatusChanged | CounterUpdated) -> AuditState | None:
        """The unfinished life ``e`` changes (None: skip ``e``), snapshot as its step began.

        The snapshot is taken the first time a step sees the life, so the
        end-of-step checks cost O(touched) and not O(all requests).
        """
        t = cast("AuditState | None", self._live.get(e.request_id))
        if t is None or t.finish_status is not None:
            return None
        if t.stamp != self.steps_finished:
            t.stamp = self.steps_finished
            t.start_computed = t.num_computed_tokens
            t.start_tokens = t.num_tokens
            t.admitted_in_step = False
            self.touched.append(t)
        return t

    def _on_added(self, e: RequestAdded) -> None:
        old = self.state(e.request_id)
        super()._on_added(e)
        if self.state(e.request_id) is not old:  # a new life: the id's last one is forgotten
            self._recent.pop(e.request_id, None)

    def _on_status(self, e: StatusChanged) -> None:
        t = self._touch(e)
        if t is None:
            return
        super()._on_status(e)
        t.status_seq = e.seq
        new = e.new_status
        if new is _RUNNING:
            t.decoding = False
            t.admitted_in_step = True
        elif new is _PREEMPTED:
            t.decoding = False

    def _on_counter(self, e: CounterUpdated) -> None:
        t = self._touch(e)
        if t is None:
            return
        super()._on_counter(e)
        counter = e.counter
        if counter == "num_computed_tokens":
            t.computed_seq = e.seq
        elif counter == "num_tokens":
            t.tokens_seq = e.seq
            t.decoding = True
            if e.token_id is not None:
                t.output_token_ids.append(e.token_id)

    def _on_allocated(self, e: BlocksAllocated) -> None:
        t = self._unfinished(e)
        if t is not None:  # blocks for a finished or unknown request change nothing
            super()._on_allocated(e)
            t.blocks_seq = e.seq
            t.block_ids += (*e.cached_block_ids, *e.block_ids)  # the hits come first
            self._holders[t.request_id] = t

    def _on_freed(self, e: BlocksFreed) -> None:
        t = self.known(e.request_id)
        if t is None:
            return
        self.num_blocks_held -= t.num_blocks
        t.num_blocks = 0
        t.blocks_seq = e.seq
        t.block_ids = []
        t.cached_block_ids = set()
        self._holders.pop(t.request_id, None)

    def _on_cached(self, e: BlocksCached) -> None:
        t = self.state(e.request_id)
        if t is not None:
            t.cached_block_ids.update(e.block_ids)

    def _on_step_finished(self, e: StepFinished) -> None:
        # A finished life still holding blocks was reported at its finish: once.
        for t in self.touched:
            if t.finish_status is not None and self._holders.get(t.request_id) is t:
                del self._holders[t.request_id]
        super()._on_step_finished(e)
        self.touched.clear()
        self.steps_finished += 1
        recent = self._recent
        if len(recent) > FINISHED_KEPT:
            for rid in list(itertools.islice(recent, len(recent) - FINISHED_KEPT)):
                del recent[rid]
