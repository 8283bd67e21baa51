"""Per-request timelines: the fold's request states, frozen into values.

A :class:`Timeline` is everything the log says about one life of one request:
its state at the end of every step it was live, its status segments, when its
prefill completed, how it grew per step, the steps at whose end a batch that
will sample for it was still in flight (async scheduling), its priority and
preemptions, how it finished,
and vLLM's latency intervals (queue, prefill, decode, end to end, TTFT, TPOT)
measured on the events' ``ts_ns`` clock. :class:`TimelineBuilder` is
:class:`~lifecycle_trace.fold.requests.RequestFold` handing out timelines;
:func:`build_timelines` folds a log in memory and :func:`iter_timelines`
streams one of any length, of one engine or several.

Cost: the fold touches each event once and stores only the steps at which a
request changed; per-step :class:`Sample` objects are built on demand.
"""

from __future__ import annotations

import itertools
import operator
from bisect import bisect_right
from collections.abc import Callable
from collections.abc import Iterable
from collections.abc import Iterator
from typing import Protocol
from typing import overload

import attrs

from lifecycle_trace.fold._life import FinishedLife
from lifecycle_trace.fold.requests import LogFold
from lifecycle_trace.fold.requests import RequestFold
from lifecycle_trace.fold.requests import RequestKey
from lifecycle_trace.fold.requests import RequestState
from lifecycle_trace.fold.requests import Source
from lifecycle_trace.fold.requests import engine_runs
from minivllm.events import EngineConfigured
from minivllm.events import Event
from minivllm.request import RequestStatus

__all__ = [
    "Sample",
    "Segment",
    "Timeline",
    "TimelineBuilder",
    "build_timelines",
    "iter_timelines",
    "life_labels",
    "timeline_of",
]

_RUNNING = RequestStatus.RUNNING


@attrs.frozen
class Sample:
    """A request's state at the end of one step (after every event of that step).

    ``num_output_placeholders`` counts the tokens scheduled for the request
    but not yet sampled (async scheduling; always 0 without it).
    """

    step: int
    status: RequestStatus
    num_computed_tokens: int
    num_tokens: int
    num_output_tokens: int
    num_output_placeholders: int = 0


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


class _Interval:
    """A read-only attribute: the nanoseconds from one of a timeline's stamps to another.

    ``None`` while either stamp is missing (the request has not got that far).
    """

    __slots__ = ("end", "start")

    def __init__(self, end: str, start: str) -> None:
        self.end = end
        self.start = start

    @overload
    def __get__(self, timeline: None, owner: type) -> _Interval: ...
    @overload
    def __get__(self, timeline: object, owner: type) -> int | None: ...
    def __get__(self, timeline: object, owner: type) -> _Interval | int | None:
        if timeline is None:
            return self
        end: int | None = getattr(timeline, self.end)
        start: int | None = getattr(timeline, self.start)
        return None if end is None or start is None else end - start


@attrs.frozen
class Timeline(FinishedLife):
    """One request's life, as the event log tells it.

    ``status_steps[i]`` is the step in which the request entered
    ``statuses[i]``, for every status entered (:attr:`status_changes` pairs them).
    The per-step state is stored compressed: ``change_steps[i]`` is a step at
    whose end the request's state was ``(change_statuses[i],
    change_computed[i], change_tokens[i], change_placeholders[i])``; between
    change steps nothing changed. ``change_placeholders`` holds
    ``num_output_placeholders``: under async scheduling, the sampled tokens
    of batches scheduled for the request and not yet processed (empty for a
    timeline built without it, read as all 0). ``priority`` is what the
    request was added with (lower runs first under the priority policy).
    ``last_step`` is the finish step, or the log's last step for a request
    still live when the log ended. Times are nanoseconds on the bus
    clock, None where the request never reached that point. ``engine_id`` names
    the engine (from the log's EngineConfigured; "" if the log has none) and
    ``added_seq`` is the sequence number of the request's RequestAdded (its
    life), so :attr:`key` tells apart the requests of a merged log and the
    lives of a reused request id. ``temperature``, ``top_p`` and ``n`` are
    the sampling parameters it asked for.
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
    status_steps: tuple[int, ...]
    statuses: tuple[RequestStatus, ...]
    engine_id: str = ""
    added_seq: int = -1
    change_placeholders: tuple[int, ...] = ()
    priority: int = 0
    temperature: float = 1.0
    top_p: float = 1.0
    n: int = 1

    # -- state ----------------------------------------------------------------

    @property
    def key(self) -> RequestKey:
        """``(engine_id, request_id, life)``: which life of which request this is."""
        return RequestKey(self.engine_id, self.request_id, self.added_seq)

    @property
    def status(self) -> RequestStatus:
        """The status at the end of the timeline."""
        return self.change_statuses[-1]

    @property
    def finished_step(self) -> int | None:
        """The step in which (or, for an abort, before which) the request finished."""
        return self.last_step if self.finish_status is not None else None

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
        placeholders = self.change_placeholders
        return Sample(
            step,
            self.change_statuses[i],
            self.change_computed[i],
            tokens,
            tokens - self.num_prompt_tokens,
            placeholders[i] if placeholders else 0,
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
    def status_changes(self) -> tuple[tuple[int, RequestStatus], ...]:
        """``(step, status)`` for every status the request entered, in order."""
        return tuple(zip(self.status_steps, self.statuses, strict=True))

    @property
    def status_sequence(self) -> tuple[RequestStatus, ...]:
        """Every status the request entered, in order, from WAITING on.

        Unlike :attr:`segments` this includes statuses held only within a step
        (a request admitted and finished in the same step was RUNNING).
        """
        return self.statuses

    @property
    def num_output_placeholders(self) -> int:
        """``num_output_placeholders`` at the end of the timeline."""
        return self.change_placeholders[-1] if self.change_placeholders else 0

    @property
    def in_flight_steps(self) -> tuple[int, ...]:
        """The steps at whose end a batch that will sample for the request was in flight.

        Under async scheduling the engine schedules a batch in one step and
        processes its output in the next, so these are the steps that ended
        with ``num_output_placeholders > 0``, up to the last step of the
        timeline. Empty without async scheduling.
        """
        return tuple(s.step for s in self.samples if s.num_output_placeholders > 0)

    # -- prefill and decode ---------------------------------------------------

    @property
    def first_running_step(self) -> int | None:
        """The first step the request was scheduled in, or None if it never was."""
        for step, status in zip(self.status_steps, self.statuses, strict=True):
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
    def first_token_step(self) -> int | None:
        """The step whose output processing appended the first sampled token, or None.

        The prefill step itself without async scheduling; under async
        scheduling one step after it, when the prefill batch's output is
        processed.
        """
        prompt = self.num_prompt_tokens
        for step, tokens in zip(self.change_steps, self.change_tokens, strict=True):
            if tokens > prompt:
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

    # vLLM's intervals, end minus start (vllm/v1/metrics/stats.py).
    queue_time_ns = _Interval(end="first_scheduled_ns", start="arrival_ns")
    """First scheduled minus arrival (vLLM's queued interval)."""
    prefill_time_ns = _Interval(end="first_token_ns", start="first_scheduled_ns")
    """First token minus first scheduled."""
    decode_time_ns = _Interval(end="last_token_ns", start="first_token_ns")
    """Last token minus first token."""
    inference_time_ns = _Interval(end="last_token_ns", start="first_scheduled_ns")
    """Last token minus first scheduled (prefill plus decode)."""
    e2e_time_ns = _Interval(end="finished_ns", start="arrival_ns")
    """Finish minus arrival."""
    ttft_ns = _Interval(end="first_token_ns", start="arrival_ns")
    """Time to first token: first token minus arrival."""

    @property
    def tpot_ns(self) -> float | None:
        """Time per output token: decode time / (outputs - 1); None with fewer than 2 outputs."""
        decode = self.decode_time_ns
        outputs = self.num_output_tokens
        if decode is None or outputs < 2:
            return None
        return decode / (outputs - 1)


# The fields a timeline takes from the request's state as they are.
_AS_FOLDED = (
    "request_id",
    "engine_id",
    "num_prompt_tokens",
    "max_tokens",
    "min_tokens",
    "priority",
    "temperature",
    "top_p",
    "n",
    "added_step",
    "finish_status",
    "stop_reason",
    "num_preemptions",
    "num_cached_tokens",
    "arrival_ns",
    "first_scheduled_ns",
    "first_token_ns",
    "last_token_ns",
    "finished_ns",
)
_as_folded = operator.attrgetter(*_AS_FOLDED)


def timeline_of(t: RequestState, log_last_step: int) -> Timeline:
    """The request's timeline as it stands, in a log whose last step so far is ``log_last_step``."""
    steps, statuses, computed, tokens, placeholders = t.history()
    finished = t.finish_status is not None
    return Timeline(
        **dict(zip(_AS_FOLDED, _as_folded(t), strict=True)),
        added_seq=t.life,
        last_step=t.step if finished else max(t.step, log_last_step),
        change_steps=steps,
        change_statuses=statuses,
        change_computed=computed,
        change_tokens=tokens,
        change_placeholders=placeholders,
        status_steps=tuple(t.status_steps),
        statuses=tuple(t.statuses),
    )


class TimelineBuilder:
    """The fold handing out timelines: feed it events in order (or subscribe it to a bus).

    ``timelines()`` may be called at any time; it snapshots without
    disturbing the fold, so a live view and a final view come from one builder.

    With ``on_retire``, the fold keeps only live requests: at the end of each
    step (a ``StepFinished``) the timeline of every request that finished is
    handed to ``on_retire`` and forgotten, so memory follows the number of live
    requests, not the length of the log; ``timelines()`` then holds only the
    requests not yet retired, and a retired request id may be added again.
    """

    def __init__(self, on_retire: Callable[[Timeline], None] | None = None) -> None:
        retire = None if on_retire is None else self._retiring(on_retire)
        self.fold = RequestFold(on_retire=retire, keep_finished=on_retire is None)

    def _retiring(self, on_retire: Callable[[Timeline], None]) -> Callable[[RequestState], None]:
        def retire(t: RequestState) -> None:
            on_retire(timeline_of(t, self.fold.last_step))

        return retire

    @property
    def config(self) -> EngineConfigured | None:
        """The log's EngineConfigured, once seen."""
        return self.fold.config

    @property
    def engine_id(self) -> str:
        """The engine named by the log's EngineConfigured ("" before it)."""
        return self.fold.engine_id

    @property
    def last_step(self) -> int:
        """The highest step index seen so far."""
        return self.fold.last_step

    @property
    def num_live(self) -> int:
        """Requests the fold currently holds (all of them unless it retires finished ones)."""
        return len(self.fold.states())

    def feed(self, event: Event) -> None:
        """Fold one event in."""
        self.fold.feed(event)

    __call__ = feed

    def feed_all(self, events: Iterable[Event]) -> None:
        """Fold events in, in order."""
        self.fold.feed_all(events)

    def retire(self) -> None:
        """Hand every finished request to ``on_retire`` now and forget it (end of a stream)."""
        self.fold.retire()

    def lives(self) -> list[Timeline]:
        """Every life's timeline so far, in the order added (a reused request id has several)."""
        last = self.fold.last_step
        return [timeline_of(t, last) for t in self.fold.states()]

    def timelines(self) -> dict[str, Timeline]:
        """Every life's timeline so far, in the order added, named by :func:`life_labels`.

        A request id used once names its timeline; a reused one (allowed once
        its request finished) names its first life, and ``ID#2``, ``ID#3``...
        the later ones (:meth:`lives` has them all as a list).
        """
        lives = self.lives()
        return dict(zip(life_labels(lives), lives, strict=True))


class _Life(Protocol):
    @property
    def engine_id(self) -> str: ...

    @property
    def request_id(self) -> str: ...


def life_labels(timelines: Iterable[_Life], engines: bool = False) -> list[str]:
    """A distinct label for each life: its request id, ``ID#N`` for the N-th life of a reused id.

    With ``engines`` (a merged log) each label starts with the engine: ``ENGINE/ID``.
    A label that would be some other request's id gets more ``#`` until it is free.
    """
    items = list(timelines)
    ids = {(t.engine_id, t.request_id) for t in items}
    seen: dict[tuple[str, str], int] = {}
    taken: set[str] = set()
    labels = []
    for t in items:
        n = seen[t.engine_id, t.request_id] = seen.get((t.engine_id, t.request_id), 0) + 1
        base = f"{t.engine_id}/{t.request_id}" if engines else t.request_id
        label = base if n == 1 else f"{base}#{n}"
        while n > 1 and (label in taken or (t.engine_id, label) in ids):
            label += "#"
        taken.add(label)
        labels.append(label)
    return labels


def build_timelines(events: Iterable[Event]) -> dict[str, Timeline]:
    """Fold one engine's log (any ordered iterable of events) into a :class:`Timeline` per life.

    Keyed by request id; a reused id's later lives are ``ID#2``, ``ID#3``...
    (:func:`life_labels`); each timeline's ``request_id`` is the id itself.
    """
    builder = TimelineBuilder()
    builder.feed_all(events)
    return builder.timelines()


# Events are folded in chunks so the fold's inlined loop does the work and
# retired timelines are handed out every few thousand events.
_CHUNK = 4096


def iter_timelines(source: Source) -> Iterator[Timeline]:
    """Every life's timeline: finished ones soon after their last step, the others at the end.

    ``source`` is one engine's events or ``(engine_id, event)`` records of
    several (as :meth:`~lifecycle_trace.reader.LogReader.records` yields
    them), each engine folded on its own. Memory follows the number of live
    requests per engine, not the log's length.
    """
    retired: list[RequestState] = []
    folds = LogFold(on_retire=retired.append, keep_finished=False)
    for engine, events in engine_runs(source)[1]:
        fold = folds.fold(engine)
        while chunk := list(itertools.islice(events, _CHUNK)):
            fold.feed_all(chunk)
            yield from _finished(retired)
    for fold in folds.folds.values():
        fold.retire()
        yield from _finished(retired)
        last = fold.last_step
        yield from (timeline_of(t, last) for t in fold.states())


def _finished(retired: list[RequestState]) -> list[Timeline]:
    # A finished timeline ends at its own finish step, whatever the log's last step.
    out = [timeline_of(t, t.step) for t in retired]
    retired.clear()
    return out
