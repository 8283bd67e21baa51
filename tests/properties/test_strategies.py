"""The strategies reach the scheduler's hard cases, so a passing suite means something.

Each test searches the shipped ``scenarios()`` strategy for a run that shows
one situation (preemption, chunked prefill, a prefix-cache hit, an abort of a
running or preempted request, an EOS or stop-token stop, ...). If a change to
the strategies stops producing it, the search fails.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import pytest
from hypothesis import HealthCheck, Phase, find, settings

from lifecycle_trace.testing import Scenario, check_scenario, scenarios
from minivllm import RequestStatus
from minivllm.events import CounterUpdated, Event, RequestAdded, StatusChanged, StepFinished

S = RequestStatus
# The searches stop at the first hit; the budget only matters for the rare
# situations (an abort that lands while a request is preempted), which a few
# hundred examples do not always reach.
SEARCH = settings(
    max_examples=2000,
    derandomize=True,
    database=None,
    phases=[Phase.generate],
    suppress_health_check=list(HealthCheck),
)


def _status(log: Sequence[Event], old: S | None, new: S) -> bool:
    return any(
        isinstance(e, StatusChanged) and e.new_status == new and old in (None, e.old_status)
        for e in log
    )


def _chunked(log: Sequence[Event]) -> bool:
    prompts = {e.request_id: e.num_prompt_tokens for e in log if isinstance(e, RequestAdded)}
    return any(
        isinstance(e, CounterUpdated)
        and e.counter == "num_computed_tokens"
        and 0 < e.new < prompts[e.request_id]
        and e.new > e.old
        for e in log
    )


def _cache_hit(log: Sequence[Event]) -> bool:
    return any(
        isinstance(e, CounterUpdated) and e.counter == "num_cached_tokens" and e.new > 0
        for e in log
    )


def _stop_reason(log: Sequence[Event], token: bool) -> bool:
    return any(
        isinstance(e, StatusChanged)
        and e.new_status == S.FINISHED_STOPPED
        and isinstance(e.stop_reason, int) == token
        for e in log
    )


def _min_tokens_capped(log: Sequence[Event]) -> bool:
    wanted = {e.request_id: e.min_tokens for e in log if isinstance(e, RequestAdded)}
    return any(
        isinstance(e, StatusChanged)
        and e.new_status == S.FINISHED_LENGTH_CAPPED
        and e.num_output_tokens < wanted[e.request_id]
        for e in log
    )


def _full_batch(log: Sequence[Event]) -> bool:
    budget = next(e.max_num_batched_tokens for e in log if hasattr(e, "max_num_batched_tokens"))
    return any(
        isinstance(e, StepFinished) and sum(e.num_scheduled_tokens.values()) == budget for e in log
    )


SITUATIONS: dict[str, Callable[[Sequence[Event]], bool]] = {
    "preemption": lambda log: _status(log, S.RUNNING, S.PREEMPTED),
    "resume after preemption": lambda log: _status(log, S.PREEMPTED, S.RUNNING),
    "chunked prefill": _chunked,
    "full token budget": _full_batch,
    "prefix-cache hit": _cache_hit,
    "abort while waiting": lambda log: _status(log, S.WAITING, S.FINISHED_ABORTED),
    "abort while running": lambda log: _status(log, S.RUNNING, S.FINISHED_ABORTED),
    "abort while preempted": lambda log: _status(log, S.PREEMPTED, S.FINISHED_ABORTED),
    "stop on EOS": lambda log: _stop_reason(log, token=False),
    "stop on a stop token": lambda log: _stop_reason(log, token=True),
    "min_tokens capped by max_model_len": _min_tokens_capped,
}


@pytest.mark.parametrize("situation", SITUATIONS)
def test_scenarios_reach(situation: str) -> None:
    seen = SITUATIONS[situation]

    def shows_it(scenario: Scenario) -> bool:
        return seen(check_scenario(scenario))

    found = find(scenarios(), shows_it, settings=SEARCH)
    assert seen(check_scenario(found))


def test_prompts_hit_the_edge_sizes() -> None:
    def edge(scenario: Scenario) -> bool:
        top = scenario.config.max_model_len - 1
        return top > scenario.config.block_size + 1 and any(
            len(r.prompt_token_ids) == top for r in scenario.requests
        )

    found = find(scenarios(), edge, settings=SEARCH)
    assert edge(found)
