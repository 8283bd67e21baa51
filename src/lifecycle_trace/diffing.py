"""Two logs side by side: where, per request, does one run part from the other?

The logs are folded into timelines (:class:`~lifecycle_trace.fold.timeline.Timeline`,
the same fold as everywhere else) and aligned by request id and, for an id
used again after its request finished, by life (its first, second, ... use).
For each pair the states at the end of every step (status and counters) are
compared, then the statuses entered within steps and how the request ended;
the first step where they part is reported with a few steps of context.

Use it for minivllm against the real vLLM scheduler (same workload, two
engines), or for a scheduler before and after a change.
:func:`assert_same_lifecycle` runs one scenario on two engines and raises
with the same report when they part.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from collections.abc import Iterable
from collections.abc import Iterator
from collections.abc import Mapping
from collections.abc import Sequence
from typing import Any
from typing import Protocol

import attrs

from lifecycle_trace.fold.timeline import Sample
from lifecycle_trace.fold.timeline import Timeline
from lifecycle_trace.fold.timeline import iter_timelines
from lifecycle_trace.log.reader import LogReader
from lifecycle_trace.streaming import Contiguous
from minivllm.bus import Handler
from minivllm.events import EngineConfigured
from minivllm.events import Event
from minivllm.events import event_to_dict
from minivllm.sampling_params import SamplingParams

__all__ = [
    "DEFAULT_CONTEXT",
    "Divergence",
    "LifecycleMismatch",
    "ScenarioEngine",
    "all_lives",
    "assert_same_lifecycle",
    "config_differences",
    "diff_logs",
    "diff_timelines",
    "drive_scenario",
    "format_divergences",
    "run_logged",
]

DEFAULT_CONTEXT = 3
"""Steps of context shown before and after the step where two runs part."""

_LOG_ENDED = "(log ended)"
_ABSENT = "-"


@attrs.frozen
class Divergence:
    """Where one request's life parts between run A and run B.

    ``life`` counts the uses of ``request_id`` from 0. ``step`` is the first
    step whose state differs (None when the request is in only one run);
    ``what`` says what differs there; ``rows`` are ``(step, state in A, state
    in B)`` around it, the parting step marked by ``step``.
    """

    request_id: str
    life: int
    step: int | None
    what: str
    rows: tuple[tuple[int, str, str], ...] = ()

    @property
    def label(self) -> str:
        """The request id, with its life when the id was used more than once."""
        return self.request_id if self.life == 0 else f"{self.request_id} (life {self.life + 1})"


def _fields(sample: Sample) -> dict[str, Any]:
    values = attrs.asdict(sample, recurse=False)
    del values["step"]
    return values


_SHORT = {
    "num_computed_tokens": "c",
    "num_tokens": "t",
    "num_output_tokens": "o",
    "num_output_placeholders": "p",
}
# Shown only when not 0: placeholders exist only under async scheduling.
_OMIT_ZERO = frozenset({"num_output_placeholders"})


def _render(state: Sample | str | None) -> str:
    if state is None:
        return _ABSENT
    if isinstance(state, str):
        return state
    values = _fields(state)
    parts = [values.pop("status").name]
    parts += [
        f"{_SHORT.get(name, name)}={value}"
        for name, value in values.items()
        if value or name not in _OMIT_ZERO
    ]
    return " ".join(parts)


def _state(t: Timeline | None, step: int) -> Sample | str | None:
    if t is None:
        return None
    try:
        return t.state_at(step)
    except ValueError:
        return _LOG_ENDED


def _key(state: Sample | str | None) -> Any:
    return _fields(state) if isinstance(state, Sample) else state


def _what(a: Sample | str | None, b: Sample | str | None) -> str:
    if not isinstance(a, Sample) or not isinstance(b, Sample):
        return f"{_render(a)} vs {_render(b)}"
    fa, fb = _fields(a), _fields(b)
    return ", ".join(
        f"{name} {_show(fa[name])} vs {_show(fb[name])}" for name in fa if fa[name] != fb[name]
    )


def _show(value: Any) -> str:
    return value.name if hasattr(value, "name") else str(value)


def _rows(
    a: Timeline | None, b: Timeline | None, step: int, first: int, last: int, context: int
) -> tuple[tuple[int, str, str], ...]:
    lo, hi = max(first, step - context), min(last, step + context)
    return tuple((s, _render(_state(a, s)), _render(_state(b, s))) for s in range(lo, hi + 1))


def _span(t: Timeline) -> tuple[int, int]:
    return t.added_step, t.last_step


def _compare(
    request_id: str, life: int, a: Timeline | None, b: Timeline | None, context: int
) -> Divergence | None:
    if a is None or b is None:
        present = a if a is not None else b
        assert present is not None
        side = "A" if a is not None else "B"
        first, last = _span(present)
        what = f"only in {side} (added at step {present.added_step})"
        return Divergence(request_id, life, None, what, _rows(a, b, first, first, last, context))
    first = min(a.added_step, b.added_step)
    last = max(a.last_step, b.last_step)
    found = _first_difference(a, b, first, last)
    if found is None:
        return None
    step, what = found
    return Divergence(request_id, life, step, what, _rows(a, b, step, first, last, context))


def _first_difference(a: Timeline, b: Timeline, first: int, last: int) -> tuple[int, str] | None:
    """The step and the words of the first way two lives of a request differ."""
    for step in range(first, last + 1):
        sa, sb = _state(a, step), _state(b, step)
        if _key(sa) != _key(sb):
            return step, _what(sa, sb)
    # Equal at every step's end; the statuses entered within a step may still differ.
    for (step_a, status_a), (step_b, status_b) in zip(
        a.status_changes, b.status_changes, strict=False
    ):
        if (step_a, status_a) != (step_b, status_b):
            what = f"entered {status_a.name} at step {step_a} vs {status_b.name} at step {step_b}"
            return min(step_a, step_b), what
    if len(a.status_changes) != len(b.status_changes):
        seq_a = " -> ".join(s.name for s in a.status_sequence)
        seq_b = " -> ".join(s.name for s in b.status_sequence)
        step = min(a.status_changes[-1][0], b.status_changes[-1][0])
        return step, f"statuses {seq_a} vs {seq_b}"
    for name in ("stop_reason", "num_preemptions", "num_cached_tokens"):
        va, vb = getattr(a, name), getattr(b, name)
        if va != vb:
            return a.last_step, f"{name} {va!r} vs {vb!r}"
    return None


def _lives(timelines: Iterable[Timeline]) -> dict[tuple[str, int], Timeline]:
    by_id: dict[str, list[Timeline]] = {}
    for t in timelines:
        by_id.setdefault(t.request_id, []).append(t)
    out: dict[tuple[str, int], Timeline] = {}
    for request_id, ts in by_id.items():
        for life, t in enumerate(sorted(ts, key=lambda t: t.added_seq)):
            out[(request_id, life)] = t
    return out


def diff_timelines(
    a: Iterable[Timeline], b: Iterable[Timeline], context: int = DEFAULT_CONTEXT
) -> list[Divergence]:
    """Every request life that parts between runs A and B, in the order A (then B) added them."""
    if context < 0:
        raise ValueError(f"context must be 0 or more steps, got {context}")
    lives_a, lives_b = _lives(a), _lives(b)
    order = sorted(
        lives_a.keys() | lives_b.keys(),
        key=lambda k: (
            k not in lives_a,
            (lives_a.get(k) or lives_b[k]).added_seq,
        ),
    )
    out = []
    for request_id, life in order:
        d = _compare(
            request_id,
            life,
            lives_a.get((request_id, life)),
            lives_b.get((request_id, life)),
            context,
        )
        if d is not None:
            out.append(d)
    return out


def _read(path: str | os.PathLike[str], lenient: bool) -> tuple[list[Timeline], EngineConfigured]:
    reader = LogReader(path, lenient=lenient)
    configs: list[EngineConfigured] = []

    def records() -> Iterator[tuple[str, Event]]:
        for engine, event in reader.records():
            if type(event) is EngineConfigured:
                configs.append(event)
            yield engine, event

    timelines = list(iter_timelines(Contiguous(records())))
    if len(configs) != 1:
        what = "no EngineConfigured" if not configs else f"{len(configs)} engines"
        raise ValueError(
            f"{os.fspath(path)}: diff compares the logs of one engine each, this one has {what} "
            f"(lifecycle-trace slice can cut a merged log down)"
        )
    return timelines, configs[0]


_NOT_LIMITS = frozenset({"type", "v", "seq", "step", "ts_ns", "engine_id", "engine", "engine_name"})


def config_differences(a: EngineConfigured, b: EngineConfigured) -> list[str]:
    """The engine limits in which two logs' EngineConfigured differ (``name: A vs B``)."""
    fields_a, fields_b = event_to_dict(a), event_to_dict(b)
    return [
        f"{name}: {fields_a[name]!r} vs {fields_b.get(name)!r}"
        for name in fields_a
        if name not in _NOT_LIMITS and fields_a[name] != fields_b.get(name)
    ]


def diff_logs(
    path_a: str | os.PathLike[str],
    path_b: str | os.PathLike[str],
    *,
    context: int = DEFAULT_CONTEXT,
    lenient: bool = False,
) -> tuple[list[Divergence], list[str]]:
    """Diff two stored logs: the divergences, and how their engine limits differ."""
    timelines_a, config_a = _read(path_a, lenient)
    timelines_b, config_b = _read(path_b, lenient)
    return diff_timelines(timelines_a, timelines_b, context), config_differences(config_a, config_b)


def format_divergences(
    divergences: Sequence[Divergence], names: tuple[str, str] = ("A", "B")
) -> str:
    """The report: per request, what parts at which step, and the steps around it."""
    blocks = []
    name_a, name_b = names
    for d in divergences:
        where = "" if d.step is None else f" at step {d.step}"
        lines = [f"request {d.label}: parts{where}: {d.what}"]
        if d.rows:
            width = max(len(name_a), *(len(a) for _, a, _ in d.rows))
            lines.append(f"    {'step':>6}  {name_a:<{width}}  {name_b}")
            for step, a, b in d.rows:
                mark = ">" if step == d.step else " "
                lines.append(f"  {mark} {step:>6}  {a:<{width}}  {b}".rstrip())
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


# -- differential tests --------------------------------------------------------


class ScenarioEngine(Protocol):
    """What :func:`drive_scenario` needs of an engine (minivllm's ``LLMEngine`` has it)."""

    def add_request(
        self, prompt: list[int], sampling_params: SamplingParams, request_id: str
    ) -> str: ...

    def abort_request(self, request_id: list[str]) -> None: ...

    def has_unfinished_requests(self) -> bool: ...

    def step(self) -> Any: ...


EngineFactory = Callable[[Any, Sequence[Handler]], ScenarioEngine]
"""``make_engine(scenario, observers)``: a fresh engine delivering every event to ``observers``."""


def drive_scenario(
    engine: ScenarioEngine,
    scenario: Any,
    live: Callable[[], Mapping[str, Any]],
    limit: int,
) -> None:
    """Run ``scenario`` on ``engine``: arrivals and aborts before each step, until it drains.

    ``live()`` returns the engine's live requests by id (for aborts);
    ``limit`` bounds the steps. A request's ``priority`` (if it has one and
    it is not 0) is passed as ``add_request(..., priority=p)``.
    """
    pending = sorted(scenario.requests, key=lambda r: r.arrival)
    aborts: dict[int, list[str]] = {}
    for r in scenario.requests:
        if r.abort is not None:
            aborts.setdefault(r.abort, []).append(r.id)
    for step in range(limit + 1):
        while pending and pending[0].arrival <= step:
            r = pending.pop(0)
            priority = getattr(r, "priority", 0)
            if priority:
                engine.add_request(  # type: ignore[call-arg]
                    list(r.prompt_token_ids), r.sampling_params, r.id, priority=priority
                )
            else:
                engine.add_request(list(r.prompt_token_ids), r.sampling_params, r.id)
        requests = live()
        aborted = [rid for rid in aborts.get(step, ()) if rid in requests]
        if aborted:
            engine.abort_request(aborted)
        if not engine.has_unfinished_requests() and not pending:
            return
        engine.step()
    raise AssertionError(f"the scenario did not drain within {limit} steps")


class LifecycleMismatch(AssertionError):
    """Two engines ran one scenario and some request's lifecycle parted; the message shows where."""

    def __init__(self, divergences: Sequence[Divergence]) -> None:
        self.divergences = tuple(divergences)
        super().__init__(
            f"{len(self.divergences)} request(s) part between the engines:\n"
            + format_divergences(self.divergences)
        )


def run_logged(make_engine: EngineFactory, scenario: Any, limit: int) -> list[Event]:
    """Run ``scenario`` on a fresh engine from ``make_engine``; return the event log."""
    log: list[Event] = []
    engine = make_engine(scenario, [log.append])
    live = _live_requests(engine)
    try:
        drive_scenario(engine, scenario, live, limit)
    finally:
        close = getattr(engine, "shutdown", None)
        if callable(close):
            close()
    if not log and scenario.requests:
        raise AssertionError(f"{make_engine!r} delivered no event: are its observers subscribed?")
    return log


def _live_requests(engine: Any) -> Callable[[], Mapping[str, Any]]:
    scheduler = getattr(engine, "scheduler", None)
    if scheduler is None or not hasattr(scheduler, "requests"):
        raise TypeError(f"the engine must expose scheduler.requests, got {engine!r}")

    def live() -> Mapping[str, Any]:
        return {rid: r for rid, r in scheduler.requests.items() if not _is_finished(r)}

    return live


def _is_finished(request: Any) -> bool:
    finished = request.is_finished
    return bool(finished() if callable(finished) else finished)


def assert_same_lifecycle(
    make_engine_a: EngineFactory,
    make_engine_b: EngineFactory,
    scenario: Any,
    *,
    limit: int | None = None,
) -> list[Event]:
    """Run ``scenario`` on two engines; raise :class:`LifecycleMismatch` if any request parts.

    Each factory is ``make_engine(scenario, observers)`` and returns a fresh
    engine with ``observers`` subscribed (``LLMEngine(..., observers=observers)``;
    for the real vLLM scheduler, :class:`lifecycle_trace.vllm.driver.VllmEngine`).
    ``limit`` bounds the steps (default: ``step_limit(scenario)``). Returns
    engine A's log.
    """
    if limit is None:
        from lifecycle_trace.testing import step_limit

        limit = step_limit(scenario)
    log_a = run_logged(make_engine_a, scenario, limit)
    log_b = run_logged(make_engine_b, scenario, limit)
    divergences = diff_timelines(all_lives(log_a), all_lives(log_b))
    if divergences:
        raise LifecycleMismatch(divergences)
    return log_a


def all_lives(log: Iterable[Event]) -> list[Timeline]:
    """Every request life of one engine's log (an id used twice gives two timelines)."""
    return list(iter_timelines(log))
