"""A hypothesis state machine over one engine: add, abort and step, every invariant checked.

Subclass :class:`EngineStateMachine` to test your own engine or scheduler.
"""

from __future__ import annotations

from typing import ClassVar

import attrs
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from lifecycle_trace.checker import InvariantChecker
from lifecycle_trace.fold.timeline import TimelineBuilder
from lifecycle_trace.testing.scenario import (
    FILLER_TOKEN_ID,
    EngineStalled,
    FakeClock,
    assert_no_violations,
    state_mismatches,
)
from lifecycle_trace.testing.strategies import (
    engine_configs,
    prompts,
    sampling_params,
    text_prompts,
    token_scripts,
)
from minivllm.config import EngineConfig
from minivllm.engine.llm_engine import LLMEngine
from minivllm.model_executor.dummy import DummyModelRunner
from minivllm.model_executor.runner import output_index
from minivllm.request import Request

__all__ = ["EngineStateMachine"]


class EngineStateMachine(RuleBasedStateMachine):
    """Random add / abort / step sequences on one engine, with every invariant checked.

    After every rule the invariant checker's violations must be empty and the
    state rebuilt from events (``TimelineBuilder``) must equal the engine's;
    at the end the engine is drained and the end-of-stream checks run. A
    failure shrinks to the shortest sequence of operations.

    To test your own engine or scheduler, subclass and override
    :meth:`make_engine` (or set ``configs``), then expose ``TestCase``::

        class MySchedulerMachine(EngineStateMachine):
            def make_engine(self, config, model):
                engine = super().make_engine(config, model)
                engine.scheduler = MyScheduler(engine.config, engine.bus)
                return engine

        TestMyScheduler = MySchedulerMachine.TestCase
    """

    configs: ClassVar[st.SearchStrategy[EngineConfig]] = engine_configs()
    """Where the machine's engine configuration is drawn from."""

    max_live_requests: ClassVar[int] = 6
    """Adds are refused beyond this many unfinished requests, to keep runs short."""

    def __init__(self) -> None:
        super().__init__()
        self.script: dict[str, dict[int, int]] = {}
        self.checker = InvariantChecker()
        self.builder = TimelineBuilder()
        self.engine: LLMEngine | None = None
        self.prefixes: list[list[int]] = []

    def make_engine(self, config: EngineConfig, model: DummyModelRunner) -> LLMEngine:
        """Build the engine under test (override to plug in your own scheduler)."""
        return LLMEngine(model, **attrs.asdict(config), clock=FakeClock())

    def _sample(self, request: Request) -> int:
        tokens = self.script.get(request.request_id, {})
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
        self.engine = self.make_engine(config, DummyModelRunner(sample_fn=self._sample))
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
        as_tokens = prompts(engine.config, self.prefixes)
        as_text = text_prompts(engine.config.max_model_len - 1)
        prompt = data.draw(st.one_of(as_tokens, as_text), label="prompt")
        params = data.draw(sampling_params(), label="params")
        rid = engine.add_request(prompt, params)
        script = data.draw(token_scripts(params), label="script")
        if script:
            self.script[rid] = script

    @precondition(lambda self: bool(self.live.scheduler.requests))
    @rule(data=st.data())
    def abort(self, data: st.DataObject) -> None:
        """Abort one live request (waiting, running or preempted)."""
        rid = data.draw(st.sampled_from(sorted(self.live.scheduler.requests)), label="abort")
        self.live.abort_request(rid)

    @rule()
    def step(self) -> None:
        """Run one engine step."""
        self.live.step()

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
        """Drain the engine and run the end-of-stream checks."""
        engine = self.engine
        if engine is None:
            return
        for _ in range(10_000):
            if not engine.has_unfinished_requests():
                break
            engine.step()
            assert_no_violations(self.checker.violations)
        else:
            raise EngineStalled(f"not drained after 10000 steps: {engine.scheduler.requests}")
        assert_no_violations(self.checker.finish())
