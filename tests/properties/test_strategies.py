"""The strategies reach the scheduler's hard cases, so a passing suite means something.

Each test searches the shipped ``scenarios()`` strategy for a run that shows
one situation (preemption, chunked prefill, a prefix-cache hit, an abort of a
running or preempted request, an EOS or stop-token stop, ...). If a change to
the strategies stops producing it, the search fails.
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Sequence

import pytest
from hypothesis import HealthCheck
from hypothesis import Phase
from hypothesis import find
from hypothesis import settings

from lifecycle_trace.testing import Scenario
from lifecycle_trace.testing import check_scenario
from lifecycle_trace.testing import scenarios
from minivllm import RequestStatus
from minivllm.events import CounterUpdated
from minivllm.events import EngineConfigured
from minivllm.events import Event
from minivllm.events import RequestAdded
from minivllm.events import StatusChanged
from minivllm.events import StepFinished

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


def _stop_string(log: Sequence[Event], multibyte: bool) -> bool:
    return any(
        isinstance(e, StatusChanged)
        and isinstance(e.stop_reason, str)
        and (len(e.stop_reason.encode()) > len(e.stop_reason)) == multibyte
        for e in log
    )


def _config(log: Sequence[Event]) -> EngineConfigured:
    return next(e for e in log if isinstance(e, EngineConfigured))


def _stop_at_min_tokens(log: Sequence[Event]) -> bool:
    wanted = {e.request_id: e.min_tokens for e in log if isinstance(e, RequestAdded)}
    return any(
        isinstance(e, StatusChanged)
        and isinstance(e.stop_reason, str)
        and wanted[e.request_id] > 0
        and e.num_output_tokens == wanted[e.request_id] + 1
        for e in log
    )


def _hit_on_resume(log: Sequence[Event]) -> bool:
    preempted = set()
    for e in log:
        if isinstance(e, StatusChanged) and e.new_status == S.PREEMPTED:
            preempted.add(e.request_id)
        if (
            isinstance(e, CounterUpdated)
            and e.counter == "num_cached_tokens"
            and e.new > 0
            and e.request_id in preempted
        ):
            return True
    return False


def _unchunked_wait(log: Sequence[Event]) -> bool:
    """Chunked prefill off, a request left waiting in a step that had budget left."""
    config = _config(log)
    if config.enable_chunked_prefill:
        return False
    return any(
        isinstance(e, StepFinished)
        and e.num_waiting > 0
        and 0 < sum(e.num_scheduled_tokens.values()) < config.max_num_batched_tokens
        and not e.preempted_req_ids
        for e in log
    )


def _async_preempted_token(log: Sequence[Event]) -> bool:
    return _config(log).async_scheduling and _status(log, S.PREEMPTED, S.FINISHED_LENGTH_CAPPED)


def _priority_preemption(log: Sequence[Event]) -> bool:
    return _config(log).policy == "priority" and _status(log, S.RUNNING, S.PREEMPTED)


SITUATIONS: dict[str, Callable[[Sequence[Event]], bool]] = {
    "stop on a stop string": lambda log: _stop_string(log, multibyte=False),
    "stop on a multi-byte stop string": lambda log: _stop_string(log, multibyte=True),
    "stop string right after min_tokens": _stop_at_min_tokens,
    "prefix-cache hit on resume": _hit_on_resume,
    "chunked prefill off with requests waiting": _unchunked_wait,
    "async: a preempted request's token in flight finishes it": _async_preempted_token,
    "priority: a preemption": _priority_preemption,
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
