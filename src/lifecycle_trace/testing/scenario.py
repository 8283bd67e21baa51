"""Scenarios and running them: a deterministic clock, a scripted model, every check on.

A :class:`Scenario` is an engine configuration, requests with arrival and
abort steps, and a :class:`ScriptedSampler` that emits EOS or stop tokens at
chosen output positions. :func:`run_scenario` drives a fresh engine through
one; :func:`check_scenario` does so with the invariant checker live and
compares, after every step, what the engine did with what the reference
scheduler (:mod:`~lifecycle_trace.testing.reference`) does, and the state the
fold rebuilds from events with the engine's own state.

Cost: a scenario is a few requests on an engine of a few dozen tokens, so one
run takes about a millisecond; a few thousand fit in a CI run.
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Iterable
from collections.abc import Mapping
from collections.abc import Sequence
from typing import Any

import attrs

from lifecycle_trace.check import InvariantChecker
from lifecycle_trace.check import Violation
from lifecycle_trace.check import format_violations
from lifecycle_trace.fold.timeline import Timeline
from lifecycle_trace.fold.timeline import TimelineBuilder
from lifecycle_trace.testing.lockstep import Lockstep
from lifecycle_trace.testing.reference import ReferenceScheduler
from minivllm.bus import Handler
from minivllm.config import EngineConfig
from minivllm.engine.llm_engine import LLMEngine
from minivllm.events import Event
from minivllm.model_executor.dummy import DummyModelRunner
from minivllm.model_executor.runner import output_index
from minivllm.request import Request
from minivllm.tokenizer import ByteTokenizer
from minivllm.workload import Workload
from minivllm.workload import WorkloadRequest

__all__ = [
    "EOS_TOKEN_ID",
    "FILLER_TOKEN_ID",
    "EngineStalled",
    "FakeClock",
    "InvariantViolationError",
    "ReferenceFactory",
    "Scenario",
    "ScriptedSampler",
    "assert_no_violations",
    "check_scenario",
    "run_scenario",
    "state_mismatches",
    "step_limit",
]

EOS_TOKEN_ID = ByteTokenizer.eos_token_id
"""The engine's EOS token (stops a request unless ``ignore_eos``)."""

FILLER_TOKEN_ID = 7
"""What a :class:`ScriptedSampler` emits where its script says nothing (never a stop token)."""


class FakeClock:
    """A deterministic nanosecond clock: each call returns the previous value plus ``tick``."""

    def __init__(self, start: int = 0, tick: int = 1_000) -> None:
        self.now = start
        self.tick = tick

    def __call__(self) -> int:
        self.now += self.tick
        return self.now


@attrs.frozen
class ScriptedSampler:
    """A ``sample_fn`` for ``DummyModelRunner``: ``script[request_id][position]``, else filler.

    ``script`` maps a request id to ``{output position: token id}``; a request
    resumed after preemption asks again for the same position and gets the
    same token, as a deterministic model would. The position is the output
    index of the token being sampled (:func:`~minivllm.model_executor.runner.output_index`):
    under async scheduling it counts the tokens still in flight.
    """

    script: Mapping[str, Mapping[int, int]] = attrs.field(factory=dict)
    filler: int = FILLER_TOKEN_ID

    def __call__(self, request: Request) -> int:
        """The token for the output position the batch just scheduled samples."""
        tokens = self.script.get(request.request_id)
        if tokens is None:
            return self.filler
        return tokens.get(output_index(request), self.filler)


@attrs.frozen
class Scenario:
    """An engine configuration, requests with arrival and abort steps, and the model's script."""

    config: EngineConfig
    requests: tuple[WorkloadRequest, ...]
    sampler: ScriptedSampler = ScriptedSampler()

    @property
    def engine_kwargs(self) -> dict[str, Any]:
        """The configuration as ``LLMEngine`` keyword arguments."""
        return attrs.asdict(self.config)

    @property
    def workload(self) -> Workload:
        """The scenario as a replayable :class:`minivllm.workload.Workload`."""
        return Workload(self.engine_kwargs, self.requests)

    def model(self) -> DummyModelRunner:
        """A fresh model runner that samples by the script."""
        return DummyModelRunner(sample_fn=self.sampler)


ReferenceFactory = Callable[[EngineConfig, Callable[[Any], int]], ReferenceScheduler]
"""Builds the reference an engine is compared with, from its config and its model's sampler."""


class EngineStalled(AssertionError):
    """The engine did not drain within :func:`step_limit` steps: a request stopped progressing."""


def step_limit(scenario: Scenario) -> int:
    """A generous bound on the steps a correct scheduler needs to drain ``scenario``.

    Each step advances the oldest running request by at least one token, and
    a request's work is its prompt plus its outputs, recomputed after each
    preemption; the factor ``len(requests) + 1`` bounds the recomputation.
    """
    max_model_len = scenario.config.max_model_len
    work = 0
    for r in scenario.requests:
        prompt = len(r.prompt_token_ids)
        outputs = max_model_len - prompt
        if r.sampling_params.max_tokens is not None:
            outputs = min(outputs, r.sampling_params.max_tokens)
        work += prompt + outputs
    last_arrival = max((r.arrival for r in scenario.requests), default=0)
    return last_arrival + (len(scenario.requests) + 1) * work + 16


def run_scenario(
    scenario: Scenario,
    observers: Iterable[Handler] = (),
    *,
    clock: Callable[[], int] | None = None,
    after_step: Callable[[LLMEngine], None] | None = None,
    reference: ReferenceFactory | None = None,
) -> LLMEngine:
    """Drive a fresh engine through ``scenario`` until it drains; return the engine.

    Before step ``s`` the requests arriving at ``s`` are added and those whose
    abort step is ``s`` are aborted (if still live), then one step runs, then
    ``after_step(engine)``. Observers are subscribed before anything happens
    and their exceptions propagate. With ``reference``, a reference scheduler
    built by it gets the same inputs and every step is compared with it
    (:class:`~lifecycle_trace.testing.lockstep.Lockstep`); a difference raises
    :class:`InvariantViolationError` naming the rule. Raises
    :class:`EngineStalled` past :func:`step_limit`.
    """
    engine = LLMEngine(
        scenario.model(),
        **scenario.engine_kwargs,
        observers=observers,
        clock=clock if clock is not None else FakeClock(),
        raise_observer_errors=True,
    )
    lockstep = (
        Lockstep(engine, scenario.sampler, reference(engine.config, scenario.sampler))
        if reference is not None
        else None
    )
    pending = sorted(scenario.requests, key=lambda r: r.arrival)
    aborts: dict[int, list[str]] = {}
    for r in scenario.requests:
        if r.abort is not None:
            aborts.setdefault(r.abort, []).append(r.id)
    limit = step_limit(scenario)
    step = 0
    while True:
        while pending and pending[0].arrival <= step:
            r = pending.pop(0)
            tokens = list(r.prompt_token_ids)
            target = engine if lockstep is None else lockstep
            target.add_request(tokens, r.sampling_params, request_id=r.id, priority=r.priority)
        live = [rid for rid in aborts.get(step, ()) if rid in engine.scheduler.requests]
        if live:
            if lockstep is None:
                engine.abort_request(live)
            else:
                lockstep.abort_request(live)
        if not engine.has_unfinished_requests() and not pending:
            return engine
        if step >= limit:
            raise EngineStalled(
                f"not drained after {limit} steps; still live: {engine.scheduler.requests}"
            )
        if lockstep is None:
            engine.step()
        else:
            assert_no_violations(lockstep.step())
        if after_step is not None:
            after_step(engine)
        step += 1


class InvariantViolationError(AssertionError):
    """The invariant checker found violations; the message lists them."""

    def __init__(self, violations: Sequence[Violation]) -> None:
        self.violations = tuple(violations)
        super().__init__(
            f"{len(self.violations)} invariant violation(s):\n{format_violations(self.violations)}"
        )


def assert_no_violations(violations: Sequence[Violation]) -> None:
    """Raise :class:`InvariantViolationError` listing ``violations`` if there are any."""
    if violations:
        raise InvariantViolationError(violations)


def state_mismatches(engine: LLMEngine, timelines: Mapping[str, Timeline]) -> list[str]:
    """Where the state rebuilt from events differs from the engine's own state (empty: none).

    Compares every live request's status and counters with its timeline, and
    checks that every timeline still unfinished is live in the engine.
    """
    out = []
    live = engine.scheduler.requests
    # The latest life of each request id (a reused id's earlier lives are keyed ID#N).
    latest = {t.request_id: t for t in timelines.values()}
    for rid, r in live.items():
        t = latest.get(rid)
        if t is None:
            out.append(f"request {rid}: live in the engine, absent from the events")
            continue
        have = (
            t.status,
            t.num_computed_tokens,
            t.num_tokens,
            t.num_preemptions,
            t.num_cached_tokens,
        )
        want = (
            r.status,
            r.num_computed_tokens,
            r.num_tokens,
            r.num_preemptions,
            r.num_cached_tokens,
        )
        if have != want:
            out.append(
                f"request {rid}: events say (status, computed, tokens, preemptions, cached) = "
                f"{have}, the engine says {want}"
            )
    for label, t in timelines.items():
        if not t.finished and t.request_id not in live:
            out.append(f"request {label}: unfinished in the events, gone from the engine")
    return out


def check_scenario(
    scenario: Scenario, reference: ReferenceFactory | None = ReferenceScheduler
) -> list[Event]:
    """Run ``scenario`` with every check on; return its event log, or raise AssertionError.

    Checks, after every step, that the engine did what the reference scheduler
    does (``reference=None`` skips that), that the invariant checker found
    nothing and that the state rebuilt from events equals the engine's state;
    at the end, the end-of-stream checks (all finished, all blocks free).
    """
    checker = InvariantChecker()
    builder = TimelineBuilder()
    log: list[Event] = []

    def after_step(engine: LLMEngine) -> None:
        assert_no_violations(checker.violations)
        mismatches = state_mismatches(engine, builder.timelines())
        if mismatches:
            raise AssertionError("state rebuilt from events differs:\n" + "\n".join(mismatches))

    run_scenario(
        scenario, (log.append, checker, builder), after_step=after_step, reference=reference
    )
    assert_no_violations(checker.finish())
    return log
