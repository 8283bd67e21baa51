"""A hypothesis state machine over one engine: add, abort and step, compared with a reference.

Subclass :class:`EngineStateMachine` to test your own engine or scheduler, and
subclass the reference it is compared with to state a rule you changed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from typing import ClassVar

import attrs
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine
from hypothesis.stateful import initialize
from hypothesis.stateful import invariant
from hypothesis.stateful import precondition
from hypothesis.stateful import rule

from lifecycle_trace.check import InvariantChecker
from lifecycle_trace.fold.timeline import TimelineBuilder
from lifecycle_trace.testing.lockstep import Lockstep
from lifecycle_trace.testing.reference import ReferenceScheduler
from lifecycle_trace.testing.scenario import FILLER_TOKEN_ID
from lifecycle_trace.testing.scenario import EngineStalled
from lifecycle_trace.testing.scenario import FakeClock
from lifecycle_trace.testing.scenario import assert_no_violations
from lifecycle_trace.testing.scenario import state_mismatches
from lifecycle_trace.testing.strategies import FOCUSES
from lifecycle_trace.testing.strategies import PRIORITIES
from lifecycle_trace.testing.strategies import engine_configs
from lifecycle_trace.testing.strategies import prompts
from lifecycle_trace.testing.strategies import sampling_params
from lifecycle_trace.testing.strategies import text_prompts
from lifecycle_trace.testing.strategies import token_scripts
from minivllm.config import EngineConfig
from minivllm.engine.llm_engine import LLMEngine
from minivllm.model_executor.dummy import DummyModelRunner
from minivllm.model_executor.runner import output_index
from minivllm.request import Request

__all__ = ["EngineStateMachine"]


class EngineStateMachine(RuleBasedStateMachine):
    """Random add / abort / step sequences on one engine, with every invariant checked.

    Rules: ``add`` (one request), ``add_several`` (two to four at once, so they
    queue), ``abort`` and ``step``. Model-based testing: a
    :class:`~lifecycle_trace.testing.reference.ReferenceScheduler`
    (the model) gets every operation the engine gets, and after every step the
    engine must have done what the reference did (scheduled tokens per request,
    preemptions, admissions, finishes, statuses and counters, queues, free
    blocks, outputs). After every rule the invariant checker's violations must
    be empty and the state rebuilt from events (``TimelineBuilder``) must equal
    the engine's; at the end the engine is drained and the end-of-stream
    checks run. A failure shrinks to the shortest sequence of operations.

    To test your own engine or scheduler, subclass and override
    :meth:`make_engine` (or set ``configs``), then expose ``TestCase``::

        class MySchedulerMachine(EngineStateMachine):
            def make_engine(self, config, model):
                engine = super().make_engine(config, model)
                engine.scheduler = MyScheduler(engine.config, engine.bus)
                return engine

        TestMyScheduler = MySchedulerMachine.TestCase

    If your scheduler changes a rule on purpose, subclass the reference and
    override that rule, and set ``reference_class`` (or override
    :meth:`make_reference`; returning None compares with nothing).
    """

    configs: ClassVar[st.SearchStrategy[EngineConfig]] = engine_configs()
    """Where the machine's engine configuration is drawn from."""

    max_live_requests: ClassVar[int] = 6
    """Adds are refused beyond this many unfinished requests, to keep runs short."""

    reference_class: ClassVar[type[ReferenceScheduler]] = ReferenceScheduler
    """The reference the engine is compared with (a subclass states a changed rule)."""

    def __init__(self) -> None:
        super().__init__()
        self.script: dict[str, dict[int, int]] = {}
        self.checker = self.make_checker()
        self.builder = TimelineBuilder()
        self.engine: LLMEngine | None = None
        self.lockstep: Lockstep | None = None
        self.prefixes: list[list[int]] = []
        self.focus = "any"

    def make_engine(self, config: EngineConfig, model: DummyModelRunner) -> LLMEngine:
        """Build the engine under test (override to plug in your own scheduler)."""
        return LLMEngine(model, **attrs.asdict(config), clock=FakeClock())

    def make_checker(self) -> InvariantChecker:
        """Build the invariant checker (override to ignore rules your scheduler changed)."""
        return InvariantChecker()

    def make_reference(
        self, config: EngineConfig, sample: Callable[[Any], int]
    ) -> ReferenceScheduler | None:
        """Build the reference the engine is compared with (None: no comparison)."""
        return self.reference_class(config, sample)

    def _sample(self, request: Request) -> int:
        tokens = self.script.get(request.request_id, {})
        # The output index being sampled: under async scheduling it counts the
        # tokens still in flight, as the ScriptedSampler's position does.
        return tokens.get(output_index(request), FILLER_TOKEN_ID)

    @property
    def live(self) -> LLMEngine:
        """The engine under test (set by the first rule)."""
        assert self.engine is not None
        return self.engine

    @initialize(data=st.data())
    def start(self, data: st.DataObject) -> None:
        """Build the engine from a drawn configuration and subscribe the checks."""
        config = data.draw(self.configs, label="config")
        self.focus = data.draw(st.sampled_from(FOCUSES), label="focus")
        self.engine = self.make_engine(config, DummyModelRunner(sample_fn=self._sample))
        reference = self.make_reference(config, self._sample)
        if reference is not None:
            self.lockstep = Lockstep(self.engine, self._sample, reference)
        self.engine.bus.subscribe(self.checker)
        self.engine.bus.subscribe(self.builder)
        self.engine.bus.raise_errors = True
        bs = config.block_size
        length = st.integers(bs, max(bs, min(2 * bs, config.max_model_len - 1)))
        self.prefixes = [[10 + i % 4 for i in range(data.draw(length))] for _ in range(2)]

    @precondition(lambda self: len(self.live.scheduler.requests) < self.max_live_requests)
    @rule(data=st.data())
    def add(self, data: st.DataObject) -> None:
        """Add a request: a token or text prompt, sampling parameters, EOS / stop positions."""
        engine = self.live
        as_tokens = prompts(engine.config, self.prefixes, focus=self.focus)
        as_text = text_prompts(engine.config.max_model_len - 1)
        prompt = data.draw(st.one_of(as_tokens, as_text), label="prompt")
        params = data.draw(sampling_params(focus=self.focus), label="params")
        priority = data.draw(PRIORITIES, label="priority")
        target = engine if self.lockstep is None else self.lockstep
        rid = target.add_request(prompt, params, priority=priority)
        script = data.draw(token_scripts(params, focus=self.focus), label="script")
        if script:
            self.script[rid] = script

    @precondition(lambda self: len(self.live.scheduler.requests) < self.max_live_requests)
    @rule(data=st.data(), count=st.sampled_from((2, 3, 4)))
    def add_several(self, data: st.DataObject, count: int) -> None:
        """Add a few requests at once, so requests queue behind each other."""
        for _ in range(min(count, self.max_live_requests - len(self.live.scheduler.requests))):
            self.add(data)

    @precondition(lambda self: bool(self.live.scheduler.requests))
    @rule(data=st.data())
    def abort(self, data: st.DataObject) -> None:
        """Abort one live request (waiting, running or preempted)."""
        rid = data.draw(st.sampled_from(sorted(self.live.scheduler.requests)), label="abort")
        if self.lockstep is None:
            self.live.abort_request(rid)
        else:
            self.lockstep.abort_request([rid])

    @rule()
    def step(self) -> None:
        """Run one engine step (and the reference's)."""
        if self.lockstep is None:
            self.live.step()
        else:
            assert_no_violations(self.lockstep.step())

    @invariant()
    def no_violations(self) -> None:
        """The invariant checker has found nothing so far."""
        assert_no_violations(self.checker.violations)

    @invariant()
    def events_rebuild_engine_state(self) -> None:
        """The state rebuilt from events equals the engine's state."""
        if self.engine is None:
            return
        mismatches = state_mismatches(self.engine, self.builder.timelines())
        assert not mismatches, "state rebuilt from events differs:\n" + "\n".join(mismatches)

    def teardown(self) -> None:
        """Drain the engine (and the reference) and run the end-of-stream checks."""
        engine = self.engine
        failed = self.checker.violations or (self.lockstep and self.lockstep.violations)
        if engine is None or failed:
            return  # the failure is reported already; stepping on would only add noise
        for _ in range(10_000):
            if not engine.has_unfinished_requests():
                break
            self.step()
            assert_no_violations(self.checker.violations)
        else:
            raise EngineStalled(f"not drained after 10000 steps: {engine.scheduler.requests}")
        assert_no_violations(self.checker.finish())
