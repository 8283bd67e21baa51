"""The log says how the engine schedules and what each request asked for."""

from __future__ import annotations

import pytest

from minivllm.engine.llm_engine import LLMEngine
from minivllm.events import EngineConfigured
from minivllm.events import Event
from minivllm.events import RequestAdded
from minivllm.sampling_params import SamplingParams


@pytest.mark.parametrize(
    ("async_scheduling", "policy", "reserve"),
    [(False, "fcfs", True), (True, "priority", False), (True, "fcfs", True)],
)
def test_engine_configured_carries_the_mode_and_policy(
    async_scheduling: bool, policy: str, reserve: bool
) -> None:
    events: list[Event] = []
    engine = LLMEngine(
        async_scheduling=async_scheduling,
        policy=policy,
        scheduler_reserve_full_isl=reserve,
        observers=[events.append],
    )
    engine.add_request("hi")
    config = events[0]
    assert isinstance(config, EngineConfigured)
    assert (config.async_scheduling, config.policy) == (async_scheduling, policy)
    assert config.scheduler_reserve_full_isl is reserve


def test_request_added_carries_priority_and_sampler_settings() -> None:
    events: list[Event] = []
    engine = LLMEngine(policy="priority", observers=[events.append])
    engine.add_request("a", SamplingParams(temperature=0, top_p=0.5), priority=3)
    engine.add_request("b", priority=-1)
    added = [e for e in events if isinstance(e, RequestAdded)]
    assert [(e.priority, e.temperature, e.top_p) for e in added] == [(3, 0.0, 0.5), (-1, 1.0, 1.0)]
    assert all(type(e.temperature) is float and type(e.top_p) is float for e in added)
