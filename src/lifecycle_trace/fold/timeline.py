"""Per-request timelines, rebuilt as one fold over the event log.

A :class:`Timeline` is everything the log says about one request: its state at
the end of every step it was live, its status segments, when its prefill
completed, how it grew per step, its preemptions, how it finished, and vLLM's
latency intervals (queue, prefill, decode, end to end, TTFT, TPOT) measured on
the events' ``ts_ns`` clock.

Cost: the fold touches each event once and stores only the steps at which a
request changed (parallel integer lists); per-step :class:`Sample` objects are
built on demand, so rebuilding is cheap and a long wait costs nothing.
"""

from __future__ import annotations

import itertools
from bisect import bisect_right
from collections.abc import Callable, Iterable
from typing import Any

import attrs

from minivllm.events import (
    BlocksAllocated,
    BlocksFreed,
    CounterUpdated,
    EngineConfigured,
    Event,
    RequestAdded,
    StatusChanged,
    StepFinished,
    StepStarted,
)
from minivllm.request import RequestStatus

__all__ = ["Sample", "Segment", "Timeline", "TimelineBuilder", "build_timelines"]

_WAITING = RequestStatus.WAITING
_RUNNING = RequestStatus.RUNNING
_PREEMPTED = RequestStatus.PREEMPTED


@attrs.frozen
class Sample:
    """A request's state at the end of one step (after every event of that step)."""

    step: int
    status: RequestStatus
    num_computed_tokens: int
    num_tokens: int
    num_output_tokens: int


@attrs.frozen
class Segment:
    """A run of consecutive steps that ended with the request in one status."""

    status: RequestStatus
    first_step: int
    last_step: int

    @property
    def num_steps(self) -> int:
        """How many steps the segment spans."""
        return self.last_step - self.first_step + 1


def _ns_diff(later: int | None, earlier: int | None) -> int | None:
    return None if later is None or earlier is None else later - earlier


@attrs.frozen
class Timeline:
    """One request's life, as the event log tells it.

    ``status_changes`` lists ``(step, status)`` for every status entered.
    The per-step state is stored compressed: ``change_steps[i]`` is a step at
    whose end the request's state was ``(change_statuses[i],
    change_computed[i], change_tokens[i])``; between change steps nothing
    changed. ``last_step`` is the finish step, or the log's last step for a
    request still live when the log ended. Times are nanoseconds on the bus
    clock, None where the request never reached that point. ``engine_id`` names
    the engine (from the log's EngineConfigured; "" if the log has none) and
    ``added_seq`` is the sequence number of the request's RequestAdded, so
    ``(engine_id, request_id)`` tells apart the requests of a merged log.
    """

    request_id: str
    num_prompt_tokens: int
    max_tokens: int
    min_tokens: int
    added_step: int
    last_step: int
    finish_status: RequestStatus | None
    stop_reason: int | str | None
    num_preemptions: int
    num_cached_tokens: int
    arrival_ns: int
    first_scheduled_ns: int | None
    first_token_ns: int | None
    last_token_ns: int | None
    finished_ns: int | None
    change_steps: tuple[int, ...]
    change_statuses: tuple[RequestStatus, ...]
    change_computed: tuple[int, ...]
    change_tokens: tuple[int, ...]
    status_changes: tuple[tuple[int, RequestStatus], ...]
    engine_id: str = ""
    added_seq: int = -1

    # -- state ----------------------------------------------------------------

    @property
    def status(self) -> RequestStatus:
        """The status at the end of the timeline."""
        return self.change_statuses[-1]

    @property
    def finished(self) -> bool:
        """Whether the request reached a FINISHED_* status."""
        return self.finish_status is not None

    @property
    def finished_step(self) -> int | None:
        """The step in which (or, for an abort, before which) the request finished."""
        return self.last_step if self.finish_status is not None else None

    @property
    def finish_reason(self) -> str | None:
        """vLLM's finish reason (``"stop"``, ``"length"``, ``"abort"``), or None if unfinished."""
        if self.finish_status is None:
            return None
        return RequestStatus.get_finished_reason(self.finish_status)

    @property
    def num_computed_tokens(self) -> int:
        """``num_computed_tokens`` at the end of the timeline."""
        return self.change_computed[-1]

    @property
    def num_tokens(self) -> int:
        """Prompt plus output tokens at the end of the timeline."""
        return self.change_tokens[-1]

    @property
    def num_output_tokens(self) -> int:
        """Output tokens sampled in all."""
        return self.change_tokens[-1] - self.num_prompt_tokens

    def state_at(self, step: int) -> Sample | None:
        """The state at the end of ``step``: None before the request was added, final once finished.

        Raises ``ValueError`` for a step past the end of the log while the
        request was still live, since the log does not know that state.
        """
        if step < self.added_step:
            return None
        if step > self.last_step:
            if self.finish_status is None:
                raise ValueError(
                    f"request {self.request_id!r}: step {step} is past the end of the log "
                    f"(step {self.last_step}) and the request had not finished"
                )
            return self._sample(len(self.change_steps) - 1, step)
        # change_steps[0] == added_step, so the index is never negative here.
        return self._sample(bisect_right(self.change_steps, step) - 1, step)

    def _sample(self, i: int, step: int) -> Sample:
        tokens = self.change_tokens[i]
        return Sample(
            step,
            self.change_statuses[i],
            self.change_computed[i],
            tokens,
            tokens - self.num_prompt_tokens,
        )

    @property
    def samples(self) -> tuple[Sample, ...]:
        """One sample per step from ``added_step`` to ``last_step``, in order."""
        out: list[Sample] = []
        steps = self.change_steps
        n = len(steps)
        i = 0
        for step in range(self.added_step, self.last_step + 1):
            while i + 1 < n and steps[i + 1] <= step:
                i += 1
            out.append(self._sample(i, step))
        return tuple(out)

    @property
    def segments(self) -> tuple[Segment, ...]:
        """The end-of-step statuses, run-length encoded: ``(status, first step, last step)``."""
        segments: list[Segment] = []
        statuses = self.change_statuses
        steps = self.change_steps
        current, first = statuses[0], steps[0]
        for status, step in zip(statuses[1:], steps[1:], strict=True):
            if status != current:
                segments.append(Segment(current, first, step - 1))
                current, first = status, step
        segments.append(Segment(current, first, self.last_step))
        return tuple(segments)

    @property
    def status_sequence(self) -> tuple[RequestStatus, ...]:
        """Every status the request entered, in order, from WAITING on.

        Unlike :attr:`segments` this includes statuses held only within a step
        (a request admitted and finished in the same step was RUNNING).
        """
        return tuple(status for _, status in self.status_changes)

    # -- prefill and decode ---------------------------------------------------

    @property
    def first_running_step(self) -> int | None:
        """The first step the request was scheduled in, or None if it never was."""
        for step, status in self.status_changes:
            if status == _RUNNING:
                return step
        return None

    @property
    def prefill_step(self) -> int | None:
        """The first step that ends with ``num_computed_tokens >= num_prompt_tokens``."""
        prompt = self.num_prompt_tokens
        for step, computed in zip(self.change_steps, self.change_computed, strict=True):
            if computed >= prompt:
                return step
        return None

    @property
    def decode_growth(self) -> tuple[int, ...]:
        """Growth of ``num_computed_tokens`` in each step after the prefill step, to the end.

        1 per step while decoding; a preemption shows as a drop to 0 and the
        recompute as a jump.
        """
        prefill = self.prefill_step
        if prefill is None:
            return ()
        computed = [s.num_computed_tokens for s in self.samples if s.step >= prefill]
        return tuple(b - a for a, b in itertools.pairwise(computed))

    @property
    def chunk_sizes(self) -> tuple[int, ...]:
        """Tokens computed in each step of the first complete prefill (one entry: no chunking).

        A preemption in the middle of a chunked prefill starts the count again;
        prefix-cache hits count in the first entry.
        """
        prefill = self.prefill_step
        if prefill is None:
            return ()
        out: list[int] = []
        previous = 0
        for s in self.samples:
            if s.step > prefill:
                break
            if s.num_computed_tokens < previous:
                out = []  # preempted mid-prefill: recomputed from scratch
                previous = 0
            if s.num_computed_tokens > previous:
                out.append(s.num_computed_tokens - previous)
            previous = s.num_computed_tokens
        return tuple(out)

    # -- vLLM's intervals (vllm/v1/metrics/stats.py) ---------------------------

    @property
    def queue_time_ns(self) -> int | None:
        """First scheduled minus arrival (vLLM's queued interval)."""
        return _ns_diff(self.first_scheduled_ns, self.arrival_ns)

    @property
    def prefill_time_ns(self) -> int | None:
        """First token minus first scheduled."""
        return _ns_diff(self.first_token_ns, self.first_scheduled_ns)

    @property
    def decode_time_ns(self) -> int | None:
        """Last token minus first token."""
        return _ns_diff(self.last_token_ns, self.first_token_ns)

    @property
    def inference_time_ns(self) -> int | None:
        """Last token minus first scheduled (prefill plus decode)."""
        return _ns_diff(self.last_token_ns, self.first_scheduled_ns)

    @property
    def e2e_time_ns(self) -> int | None:
        """Finish minus arrival."""
        return _ns_diff(self.finished_ns, self.arrival_ns)

    @property
    def ttft_ns(self) -> int | None:
        """Time to first token: first token minus arrival."""
        return _ns_diff(self.first_token_ns, self.arrival_ns)

    @property
    def tpot_ns(self) -> float | None:
        """Time per output token: decode time / (outputs - 1); None with fewer than 2 outputs."""
        decode = self.decode_time_ns
        outputs = self.num_output_tokens
        if decode is None or outputs < 2:
            return None
        return decode / (outputs - 1)


class _Track:
    """The fold's mutable state for one request."""

    __slots__ = (
        "added_seq",
        "added_step",
        "arrival_ns",
        "cached",
        "computed",
        "finish_status",
        "finished_ns",
        "first_scheduled_ns",
        "first_token_ns",
        "history",
        "last_token_ns",
        "max_tokens",
        "min_tokens",
        "preemptions",
        "prompt",
        "request_id",
        "s_computed",
        "s_status",
        "s_steps",
        "s_tokens",
        "status",
        "step",
        "stop_reason",
        "tokens",
    )

    def __init__(self, e: RequestAdded) -> None:
        self.request_id = e.request_id
        self.prompt = e.num_prompt_tokens
        self.max_tokens = e.max_tokens
        self.min_tokens = e.min_tokens
        self.added_step = e.step
        self.added_seq = e.seq
        self.arrival_ns = e.ts_ns
        self.status = _WAITING
        self.computed = 0
        self.tokens = e.num_prompt_tokens
        self.cached = 0
        self.preemptions = 0
        self.stop_reason: int | str | None = None
        self.finish_status: RequestStatus | None = None
        self.first_scheduled_ns: int | None = None
        self.first_token_ns: int | None = None
        self.last_token_ns: int | None = None
        self.finished_ns: int | None = None
        # The step whose state is being built; earlier steps are in the s_* lists.
        self.step = e.step
        self.s_steps: list[int] = []
        self.s_status: list[RequestStatus] = []
        self.s_computed: list[int] = []
        self.s_tokens: list[int] = []
        self.history: list[tuple[int, RequestStatus]] = [(e.step, _WAITING)]

    def flush(self) -> None:
        self.s_steps.append(self.step)
        self.s_status.append(self.status)
        self.s_computed.append(self.computed)
        self.s_tokens.append(self.tokens)

    def freeze(self, log_last_step: int, engine_id: str) -> Timeline:
        last = self.step if self.finish_status is not None else max(self.step, log_last_step)
        return Timeline(
            request_id=self.request_id,
            num_prompt_tokens=self.prompt,
            max_tokens=self.max_tokens,
            min_tokens=self.min_tokens,
            added_step=self.added_step,
            last_step=last,
            finish_status=self.finish_status,
            stop_reason=self.stop_reason,
            num_preemptions=self.preemptions,
            num_cached_tokens=self.cached,
            arrival_ns=self.arrival_ns,
            first_scheduled_ns=self.first_scheduled_ns,
            first_token_ns=self.first_token_ns,
            last_token_ns=self.last_token_ns,
            finished_ns=self.finished_ns,
            change_steps=(*self.s_steps, self.step),
            change_statuses=(*self.s_status, self.status),
            change_computed=(*self.s_computed, self.computed),
            change_tokens=(*self.s_tokens, self.tokens),
            status_changes=tuple(self.history),
            engine_id=engine_id,
            added_seq=self.added_seq,
        )


class TimelineBuilder:
    """The fold itself: feed it events in order (or subscribe it to a bus), then ask for timelines.

    ``timelines()`` may be called at any time; it snapshots without
    disturbing the fold, so a live view and a final view come from one builder.

    With ``on_retire``, the fold keeps only live requests: at the end of each
    step (a ``StepFinished``) the timeline of every request that finished is
    handed to ``on_retire`` and forgotten, so memory follows the number of live
    requests, not the length of the log; ``timelines()`` then holds only the
    requests not yet retired, and a retired request id may be added again.
    """

    def __init__(self, on_retire: Callable[[Timeline], None] | None = None) -> None:
        self._tracks: dict[str, _Track] = {}
        self._last_step = 0
        self.config: EngineConfigured | None = None
        self._on_retire = on_retire
        self._finished: list[_Track] = []
        self._handlers: dict[type[Event], Callable[[Any], None]] = {
            CounterUpdated: self._on_counter,
            StatusChanged: self._on_status,
            RequestAdded: self._on_added,
            StepStarted: self._on_step,
            StepFinished: self._on_step_finished,
            BlocksAllocated: _ignore,
            BlocksFreed: _ignore,
            EngineConfigured: self._on_config,
        }

    @property
    def last_step(self) -> int:
        """The highest step index seen so far."""
        return self._last_step

    def feed(self, event: Event) -> None:
        """Fold one event in."""
        try:
            handler = self._handlers[type(event)]
        except KeyError:
            raise TypeError(f"not an engine event: {event!r}") from None
        handler(event)

    __call__ = feed

    def feed_all(self, events: Iterable[Event]) -> None:
        """Fold events in, in order (the same fold as :meth:`feed`, with the hot path inlined)."""
        handlers = self._handlers
        tracks = self._tracks
        counter_updated = CounterUpdated
        on_counter = self._on_counter
        for e in events:
            # Nine events in ten are a decode step's two counter updates.
            if type(e) is counter_updated:
                t = tracks.get(e.request_id)
                if t is not None and e.step == t.step:
                    counter = e.counter
                    if counter == "num_computed_tokens":
                        t.computed = e.new
                        continue
                    if counter == "num_tokens":
                        t.tokens = e.new
                        t.last_token_ns = e.ts_ns
                        if t.first_token_ns is None:
                            t.first_token_ns = e.ts_ns
                        continue
                on_counter(e)
            else:
                handler = handlers.get(type(e))
                if handler is None:
                    raise TypeError(f"not an engine event: {e!r}")
                handler(e)

    def timelines(self) -> dict[str, Timeline]:
        """Every request's timeline so far, by request id, in the order they were added."""
        last = self._last_step
        engine_id = self.engine_id
        return {rid: track.freeze(last, engine_id) for rid, track in self._tracks.items()}

    @property
    def engine_id(self) -> str:
        """The engine named by the log's EngineConfigured ("" before it)."""
        return "" if self.config is None else self.config.engine_id

    @property
    def num_live(self) -> int:
        """Requests the fold currently holds (all of them unless it retires finished ones)."""
        return len(self._tracks)

    def retire(self) -> None:
        """Hand every finished request to ``on_retire`` now and forget it (end of a stream)."""
        callback = self._on_retire
        if callback is None or not self._finished:
            return
        last = self._last_step
        engine_id = self.engine_id
        tracks = self._tracks
        for t in self._finished:
            if tracks.get(t.request_id) is t:
                del tracks[t.request_id]
                callback(t.freeze(last, engine_id))
        self._finished.clear()

    # -- handlers -------------------------------------------------------------

    def _track(self, e: StatusChanged | CounterUpdated) -> _Track:
        try:
            return self._tracks[e.request_id]
        except KeyError:
            raise ValueError(
                f"seq {e.seq}: {type(e).__name__} for request {e.request_id!r}, which the log "
                f"never added (does the log start mid-run?)"
            ) from None

    def _on_counter(self, e: CounterUpdated) -> None:
        t = self._tracks.get(e.request_id) or self._track(e)
        if e.step != t.step:
            t.flush()
            t.step = e.step
        counter = e.counter
        if counter == "num_computed_tokens":
            t.computed = e.new
        elif counter == "num_tokens":
            t.tokens = e.new
            ts = e.ts_ns
            if t.first_token_ns is None:
                t.first_token_ns = ts
            t.last_token_ns = ts
        elif counter == "num_preemptions":
            t.preemptions = e.new
        elif counter == "num_cached_tokens":
            t.cached = e.new
        else:
            raise ValueError(f"seq {e.seq}: unknown counter {counter!r}")

    def _on_status(self, e: StatusChanged) -> None:
        t = self._tracks.get(e.request_id) or self._track(e)
        step = e.step
        if step != t.step:
            t.flush()
            t.step = step
            if step > self._last_step:
                self._last_step = step
        new = e.new_status
        t.status = new
        t.history.append((step, new))
        t.computed = e.num_computed_tokens
        t.tokens = e.num_tokens
        if new == _RUNNING:
            if t.first_scheduled_ns is None:
                t.first_scheduled_ns = e.ts_ns
        elif new > _PREEMPTED:
            t.finish_status = new
            t.finished_ns = e.ts_ns
            t.stop_reason = e.stop_reason
            if self._on_retire is not None:
                self._finished.append(t)

    def _on_added(self, e: RequestAdded) -> None:
        old = self._tracks.get(e.request_id)
        if old is not None and old.finish_status is not None and self._on_retire is not None:
            self.retire()  # the id was reused before the step that finished it ended
        if e.request_id in self._tracks:
            raise ValueError(
                f"seq {e.seq}: request id {e.request_id!r} is added a second time; "
                f"timelines are keyed by request id"
            )
        self._tracks[e.request_id] = _Track(e)
        if e.step > self._last_step:
            self._last_step = e.step

    def _on_step(self, e: StepStarted | StepFinished) -> None:
        if e.step > self._last_step:
            self._last_step = e.step

    def _on_step_finished(self, e: StepFinished) -> None:
        if e.step > self._last_step:
            self._last_step = e.step
        if self._finished:
            self.retire()

    def _on_config(self, e: EngineConfigured) -> None:
        self.config = e


def _ignore(event: Event) -> None:
    """Events that say nothing about a request's own state."""


def build_timelines(events: Iterable[Event]) -> dict[str, Timeline]:
    """Fold a log (any ordered iterable of events) into one :class:`Timeline` per request."""
    builder = TimelineBuilder()
    builder.feed_all(events)
    return builder.timelines()
