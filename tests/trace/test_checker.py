"""The invariant checker: silent on correct runs, precise on corrupted event streams.

Each corruption test takes a real log, breaks exactly one thing, and checks
which violation the checker reports (invariant, request, step, and the
sequence number of the corrupted event). Removing any one check from the
checker makes its test fail.
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Sequence
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

import msgspec
import pytest
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

import lifecycle_trace
import lifecycle_trace.check as check_package
from helpers.engine import engine_config
from helpers.engine import make_engine
from lifecycle_trace.checker import INVARIANTS
from lifecycle_trace.checker import LEGAL_TRANSITIONS
from lifecycle_trace.checker import InvariantChecker
from lifecycle_trace.checker import Violation
from lifecycle_trace.checker import check
from lifecycle_trace.checker import format_violations
from lifecycle_trace.testing import EOS_TOKEN_ID
from lifecycle_trace.testing import Scenario
from lifecycle_trace.testing import ScriptedSampler
from lifecycle_trace.testing import run_scenario
from lifecycle_trace.testing import scenarios
from minivllm import DummyModelRunner
from minivllm import LLMEngine
from minivllm import ModelRunnerOutput
from minivllm import RequestStatus
from minivllm import SamplingParams
from minivllm.config import EngineConfig
from minivllm.core.sched.output import SchedulerOutput
from minivllm.events import BlocksAllocated
from minivllm.events import BlocksFreed
from minivllm.events import CounterUpdated
from minivllm.events import EngineConfigured
from minivllm.events import Event
from minivllm.events import RequestAdded
from minivllm.events import StatusChanged
from minivllm.events import StepFinished
from minivllm.events import StepStarted
from minivllm.workload import Workload
from minivllm.workload import WorkloadRequest
from minivllm.workload import run_workload

DATA = Path(__file__).resolve().parents[1] / "data" / "vllm_examples"
S = RequestStatus


@cache
def workload_log(path: Path) -> tuple[Event, ...]:
    """The event log of the workload stored at ``path``."""
    events: list[Event] = []
    workload = Workload.load(path)
    list(run_workload(workload, on_engine=lambda e: e.bus.subscribe(events.append)))
    return tuple(events)


def reference_log(name: str) -> tuple[Event, ...]:
    """The event log of one reference workload (a, b, c or d)."""
    return workload_log(DATA / f"{name}.json")


def renumber(events: Sequence[Event]) -> list[Event]:
    """Gapless sequence numbers again after events were inserted or removed."""
    return [msgspec.structs.replace(e, seq=i) for i, e in enumerate(events)]


def index_of(events: Sequence[Event], kind: type[Event], nth: int = 0, **fields: Any) -> int:
    """Position of the ``nth`` event of ``kind`` whose fields match ``fields``."""
    hits = [
        i
        for i, e in enumerate(events)
        if type(e) is kind and all(getattr(e, k) == v for k, v in fields.items())
    ]
    return hits[nth]


def replace(events: Sequence[Event], i: int, **changes: Any) -> list[Event]:
    """The log with event ``i`` changed."""
    out = list(events)
    out[i] = msgspec.structs.replace(out[i], **changes)
    return out


def admissions_swapped(events: Sequence[Event], first: str, second: str) -> list[Event]:
    """The log with the admissions of requests ``first`` and ``second`` in each other's place."""
    a = index_of(events, StatusChanged, request_id=first, new_status=S.RUNNING)
    b = index_of(events, StatusChanged, request_id=second, new_status=S.RUNNING)
    log = list(events)
    log[a], log[b] = events[b], events[a]
    return renumber(log)


def summary(violations: Sequence[Violation]) -> list[tuple[str, str | None, int]]:
    """(invariant, request, step) of each violation, for compact assertions."""
    return [(v.invariant, v.request_id, v.step) for v in violations]


# -- clean runs ---------------------------------------------------------------


@pytest.mark.parametrize("name", ["a", "b", "c", "d"])
def test_reference_runs_are_clean(name: str) -> None:
    assert check(reference_log(name)) == []


@settings(max_examples=30)
@given(scenarios())
def test_random_runs_are_clean_live_and_offline(scenario: Scenario) -> None:
    live = InvariantChecker()
    log: list[Event] = []
    run_scenario(scenario, (live, log.append))
    assert live.finish() == []
    assert check(log) == []


class FlakyRunner(DummyModelRunner):
    """Returns one malformed output at a chosen step, so the engine undoes that step."""

    def __init__(self, bad_step: int) -> None:
        super().__init__(token_id=7)
        self.calls = 0
        self.bad_step = bad_step

    def execute_model(self, scheduler_output: SchedulerOutput) -> ModelRunnerOutput:
        out = super().execute_model(scheduler_output)
        self.calls += 1
        if self.calls - 1 == self.bad_step:
            return ModelRunnerOutput(out.req_ids, [[999] for _ in out.req_ids])
        return out


@pytest.mark.parametrize("bad_step", [0, 1, 3])
def test_an_undone_step_is_not_a_violation(bad_step: int) -> None:
    checker = InvariantChecker()
    engine = LLMEngine(FlakyRunner(bad_step), max_num_batched_tokens=8, max_num_seqs=2)
    engine.bus.subscribe(checker)
    engine.add_request([1] * 10, SamplingParams(max_tokens=3))
    engine.add_request([2] * 3, SamplingParams(max_tokens=3))
    refused = 0
    while engine.has_unfinished_requests():
        try:
            engine.step()
        except ValueError:
            refused += 1
    assert refused == 1
    assert checker.finish() == []


def test_violation_names_invariant_request_step_and_events() -> None:
    v = Violation("decode_gap", "r1", 7, (40, 41), "decoding with ...")
    assert str(v) == "[decode_gap] step 7 request r1 (events 40, 41): decoding with ..."
    assert format_violations([v, v]).count("\n") == 1
    assert "decode_gap" in INVARIANTS


def test_transition_table_is_the_reference_one() -> None:
    finished = [s for s in S if S.is_finished(s)]
    for old, new in LEGAL_TRANSITIONS:
        assert not S.is_finished(old)
        assert old != new
    assert not any((f, s) in LEGAL_TRANSITIONS for f in finished for s in S)
    assert {(S.WAITING, S.RUNNING), (S.RUNNING, S.PREEMPTED), (S.PREEMPTED, S.RUNNING)} < set(
        LEGAL_TRANSITIONS
    )


def test_finish_is_idempotent_and_live_use_sees_the_same() -> None:
    checker = InvariantChecker()
    for e in reference_log("c"):
        checker(e)
    assert checker.finish() == checker.finish() == []


# -- corrupted streams ----------------------------------------------------------

Corruption = Callable[[list[Event]], list[Event]]


def _gap(log: list[Event]) -> list[Event]:
    k = len(log) // 2
    return log[:k] + [msgspec.structs.replace(e, seq=e.seq + 1) for e in log[k:]]


def test_event_order() -> None:
    log = _gap(list(reference_log("a")))
    assert summary(check(log)) == [("event_order", None, log[len(log) // 2].step)]


def test_engine_configured_first() -> None:
    log = renumber(reference_log("a")[1:])
    assert summary(check(log)) == [("engine_configured", None, 0)]


def test_engine_configured_once() -> None:
    base = list(reference_log("a"))
    log = renumber([base[0], base[0], *base[1:]])
    assert summary(check(log)) == [("engine_configured", None, 0)]


def test_request_identity_duplicate_add() -> None:
    base = list(reference_log("a"))
    log = renumber([*base[:2], base[1], *base[2:]])
    violations = check(log)
    assert summary(violations) == [("request_identity", "r0", 0)]
    assert violations[0].seqs == (1, 2)


def test_request_identity_unknown_request() -> None:
    base = list(reference_log("a"))
    ghost = msgspec.structs.replace(base[5], request_id="ghost")
    log = renumber([*base[:6], ghost, *base[6:]])
    assert summary(check(log)) == [("request_identity", "ghost", 0)]


def test_status_consistent() -> None:
    base = list(reference_log("a"))
    i = index_of(base, StatusChanged, new_status=S.FINISHED_LENGTH_CAPPED)
    violations = check(replace(base, i, old_status=S.WAITING))
    assert summary(violations) == [("status_consistent", "r0", 4)]
    assert base[i].seq in violations[0].seqs


def test_legal_transition() -> None:
    base = list(reference_log("a"))
    i = index_of(base, StatusChanged, new_status=S.FINISHED_LENGTH_CAPPED)
    violations = check(replace(base, i, new_status=S.FINISHED_IGNORED))
    assert summary(violations) == [("legal_transition", "r0", 4)]
    assert "RUNNING -> FINISHED_IGNORED" in violations[0].message


def test_finished_is_final() -> None:
    base = list(reference_log("a"))
    i = index_of(base, StatusChanged, new_status=S.FINISHED_LENGTH_CAPPED)
    revive = msgspec.structs.replace(
        base[i], old_status=S.FINISHED_LENGTH_CAPPED, new_status=S.RUNNING
    )
    log = renumber([*base[: i + 1], revive, *base[i + 1 :]])
    violations = check(log)
    assert summary(violations) == [("finished_is_final", "r0", 4)]
    assert violations[0].seqs == (i, i + 1)


def test_counter_consistent() -> None:
    base = list(reference_log("c"))
    i = index_of(base, CounterUpdated, counter="num_preemptions")
    assert summary(check(replace(base, i, old=5))) == [("counter_consistent", "r1", 9)]


def test_counter_consistent_on_status_snapshot() -> None:
    base = list(reference_log("a"))
    i = index_of(base, StatusChanged, new_status=S.FINISHED_LENGTH_CAPPED)
    assert summary(check(replace(base, i, num_tokens=99))) == [("counter_consistent", "r0", 4)]


def test_computed_monotonic() -> None:
    base = list(reference_log("a"))
    i = index_of(base, StepFinished, step=2)
    down = CounterUpdated(
        seq=0, step=3, ts_ns=0, request_id="r0", counter="num_computed_tokens", old=14, new=13
    )
    up = msgspec.structs.replace(down, old=13, new=14)
    log = renumber([*base[: i + 1], down, up, *base[i + 1 :]])
    violations = check(log)
    assert summary(violations) == [("computed_monotonic", "r0", 3)]
    assert i + 1 in violations[0].seqs


def test_preempted_reset() -> None:
    base = list(reference_log("c"))
    i = index_of(base, CounterUpdated, counter="num_computed_tokens", new=0)
    violations = check(renumber(base[:i] + base[i + 1 :]))
    # Later events still start from 0, so the missing reset also breaks their counters.
    assert summary(violations)[0] == ("preempted_reset", "r1", 9)


def test_computed_bounds() -> None:
    base = list(reference_log("a"))
    i = index_of(base, CounterUpdated, counter="num_computed_tokens", old=0)
    violations = check(replace(base, i, new=13))
    assert summary(violations)[0] == ("computed_bounds", "r0", 0)
    assert base[i].seq in violations[0].seqs


def test_computed_bounds_max_model_len() -> None:
    base = list(reference_log("a"))
    violations = check(replace(base, 0, max_model_len=12))
    assert summary(violations)[0] == ("computed_bounds", "r0", 0)


def test_decode_gap() -> None:
    base = list(reference_log("a"))
    i = index_of(base, CounterUpdated, counter="num_tokens", step=2)
    violations = check(renumber(base[:i] + base[i + 1 :]))
    assert summary(violations)[0] == ("decode_gap", "r0", 2)


def test_decode_advance_two_tokens_in_a_step() -> None:
    base = list(reference_log("a"))
    i = index_of(base, CounterUpdated, counter="num_tokens", step=2)
    extra = msgspec.structs.replace(base[i], old=15, new=16)
    violations = check(renumber([*base[: i + 1], extra, *base[i + 1 :]]))
    assert summary(violations)[0] == ("decode_advance", "r0", 2)


def test_scheduled_consistent() -> None:
    base = list(reference_log("b"))
    i = index_of(base, StepFinished, step=0)
    violations = check(replace(base, i, num_scheduled_tokens={"r0": 255}))
    assert summary(violations) == [("scheduled_consistent", "r0", 0)]


def test_token_budget() -> None:
    base = list(reference_log("b"))
    violations = check(replace(base, 0, max_num_batched_tokens=255))
    assert summary(violations) == [("token_budget", None, 0), ("token_budget", None, 1)]


def test_long_prefill_threshold() -> None:
    base = list(reference_log("b"))
    violations = check(replace(base, 0, long_prefill_token_threshold=100))
    assert summary(violations) == [
        ("long_prefill_threshold", "r0", 0),
        ("long_prefill_threshold", "r0", 1),
    ]


def test_max_num_seqs() -> None:
    base = list(reference_log("d"))
    violations = check(replace(base, 0, max_num_seqs=3))
    assert violations
    assert {v.invariant for v in violations} == {"max_num_seqs"}
    assert summary(violations)[0] == ("max_num_seqs", "r3", 1)


def test_no_admission_after_preemption() -> None:
    base = list(reference_log("c"))
    i = index_of(base, CounterUpdated, counter="num_preemptions")
    p = index_of(base, StatusChanged, new_status=S.PREEMPTED)
    readmit = msgspec.structs.replace(
        base[p], old_status=S.PREEMPTED, new_status=S.RUNNING, num_computed_tokens=0
    )
    violations = check(renumber([*base[: i + 1], readmit, *base[i + 1 :]]))
    assert summary(violations)[0] == ("no_admission_after_preemption", "r1", 9)
    assert violations[0].seqs == (p, i + 1)


def test_preempt_last() -> None:
    violations = check(admissions_swapped(reference_log("c"), "r0", "r1"))
    # r1 admitted ahead of r0 is also out of FCFS order.
    assert summary(violations) == [("fcfs_order", "r1", 0), ("preempt_last", "r1", 9)]


# -- decision rules ---------------------------------------------------------------


def test_fcfs_order() -> None:
    violations = check(admissions_swapped(reference_log("d"), "r1", "r2"))
    assert summary(violations) == [("fcfs_order", "r2", 0)]
    assert "r1 (WAITING) was at the head" in violations[0].message


def test_admission_complete() -> None:
    # Step 0 of run d used its whole budget of 64 on r0, r1, r2, so r3 waited.
    # Had the budget been 96 (chunked prefill on), r3 would have had tokens left
    # to start with: stopping there breaks the rule.
    base = list(reference_log("d"))
    violations = check(replace(base, 0, max_num_batched_tokens=96))
    assert ("admission_complete", "r3", 0) in summary(violations)
    assert {v.invariant for v in violations} == {"admission_complete"}
    assert "32 of 96 tokens of budget left" in violations[0].message


def test_unchunked_whole_prompt() -> None:
    # Run b chunks a 600-token prompt into 256-token steps; with chunked prefill
    # off the first admission must have scheduled all 600 (or nothing).
    base = list(reference_log("b"))
    violations = check(replace(base, 0, enable_chunked_prefill=False))
    assert summary(violations) == [("unchunked_whole_prompt", "r0", 0)]
    assert "256 of its 600 remaining tokens" in violations[0].message


def _engine_log(requests: Sequence[tuple[str, int, int]], config: EngineConfig) -> list[Event]:
    """The log of a run of ``(request id, prompt length, priority)`` requests, all at step 0."""
    log: list[Event] = []
    llm = make_engine(config, observers=[log.append])
    for rid, length, priority in requests:
        llm.add_request([1] * length, SamplingParams(max_tokens=None), rid, priority=priority)
    while llm.has_unfinished_requests():
        llm.step()
    return log


def test_priority_order() -> None:
    config = engine_config(1, 8, 4, 8, 8, policy="priority")
    base = _engine_log([("r0", 3, 2), ("r1", 3, 0), ("r2", 3, 1)], config)
    assert check(base) == []
    # Had r0 asked for priority -1, admitting r1, then r2, before it breaks the policy.
    i = index_of(base, RequestAdded, request_id="r0")
    violations = check(replace(base, i, priority=-1))
    assert summary(violations) == [("priority_order", "r1", 0), ("priority_order", "r2", 5)]
    assert "(0, 1)" in violations[0].message and "r0 waited with (-1, 0)" in violations[0].message


def test_full_sequence_gate() -> None:
    # Without the gate the engine admits r1 with a chunk that fits while its whole
    # sequence does not; a log that says the gate was on cannot show that.
    config = engine_config(2, 2, 1, 6, 5, scheduler_reserve_full_isl=False)
    base = _engine_log([("r0", 1, 0), ("r1", 1, 0)], config)
    assert check(base) == []
    violations = check(replace(base, 0, scheduler_reserve_full_isl=True))
    assert [v.invariant for v in violations] == ["full_sequence_gate"]
    assert "needing" in violations[0].message


# -- block and token rules -----------------------------------------------------------


def test_lru_order() -> None:
    base = list(reference_log("c"))
    i = index_of(base, BlocksAllocated, request_id="r0")
    fresh = base[i].block_ids  # type: ignore[attr-defined]
    assert fresh == (1, 2, 3)
    violations = check(replace(base, i, block_ids=(2, 1, 3)))
    assert summary(violations)[0] == ("lru_order", "r0", 0)
    assert "head of the free list was [1, 2, 3]" in violations[0].message
    assert {v.invariant for v in violations} == {"lru_order"}


def _hit_log() -> list[Event]:
    """r1 arrives after r0 finished and hits r0's first (cached) block."""
    log: list[Event] = []
    llm = LLMEngine(
        DummyModelRunner(token_id=7),
        observers=[log.append],
        enable_prefix_caching=True,
        block_size=4,
        max_model_len=16,
        num_gpu_blocks=9,
    )
    params = SamplingParams(max_tokens=2)
    llm.add_request([1] * 8, params, "r0")
    while llm.has_unfinished_requests():
        llm.step()
    llm.add_request([1] * 8, params, "r1")
    while llm.has_unfinished_requests():
        llm.step()
    return log


def test_prefix_cache_hit() -> None:
    base = _hit_log()
    assert check(base) == []
    i = index_of(base, BlocksAllocated, request_id="r1")
    assert base[i].cached_block_ids  # type: ignore[attr-defined]
    violations = check(replace(base, i, cached_block_hashes=(12345,)))
    assert summary(violations) == [("prefix_cache_hit", "r1", base[i].step)]
    assert "under hash 12345" in violations[0].message


def _stop_log(**params: Any) -> list[Event]:
    log: list[Event] = []
    llm = LLMEngine(DummyModelRunner(token_id=7), observers=[log.append], max_model_len=16)
    llm.add_request([1, 2], SamplingParams(max_tokens=4, **params), "r0")
    while llm.has_unfinished_requests():
        llm.step()
    return log


def test_stop_tokens_stop_without_a_stop_token() -> None:
    base = _stop_log(stop_token_ids=[7])
    assert check(base) == []
    i = index_of(base, RequestAdded, request_id="r0")
    violations = check(replace(base, i, stop_token_ids=()))
    assert summary(violations) == [("stop_tokens", "r0", 0)]
    assert "stop_reason 7" in violations[0].message


def test_stop_tokens_a_stop_token_that_did_not_stop() -> None:
    base = _stop_log()
    i = index_of(base, RequestAdded, request_id="r0")
    violations = check(replace(base, i, stop_token_ids=(7,)))
    # Every 7 it sampled should have stopped it, the first already.
    assert summary(violations) == [("stop_tokens", "r0", step) for step in range(4)]
    assert "sampled 7 as output 1" in violations[0].message


def test_stop_string() -> None:
    base = _stop_log(stop=["\x07"])
    assert check(base) == []
    i = index_of(base, CounterUpdated, counter="num_tokens")
    violations = check(replace(base, i, token_id=8))
    assert summary(violations) == [("stop_string", "r0", 0)]
    assert "does not complete it" in violations[0].message


def test_cached_tokens() -> None:
    base = list(reference_log("a"))
    i = index_of(base, StatusChanged, request_id="r0", new_status=S.RUNNING)
    cached = CounterUpdated(
        seq=0,
        step=0,
        ts_ns=base[i].ts_ns,
        request_id="r0",
        counter="num_cached_tokens",
        old=0,
        new=4,
    )
    violations = check(renumber([*base[: i + 1], cached, *base[i + 1 :]]))
    assert summary(violations) == [("cached_tokens", "r0", 0)]
    assert "prefix caching is off" in violations[0].message


def test_kv_accounting() -> None:
    base = list(reference_log("c"))
    i = index_of(base, StepFinished, step=5)
    free = base[i].num_free_blocks  # type: ignore[attr-defined]
    assert summary(check(replace(base, i, num_free_blocks=free + 1))) == [
        ("kv_accounting", None, 5)
    ]


def test_kv_accounting_used_vs_held() -> None:
    base = list(reference_log("c"))
    i = index_of(base, StepFinished, step=5)
    e = base[i]
    log = replace(
        base,
        i,
        num_free_blocks=e.num_free_blocks + 1,  # type: ignore[attr-defined]
        num_used_blocks=e.num_used_blocks - 1,  # type: ignore[attr-defined]
    )
    assert summary(check(log)) == [("kv_accounting", None, 5)]


def test_request_blocks_partial_free() -> None:
    base = list(reference_log("c"))
    i = index_of(base, BlocksFreed, request_id="r0")
    violations = check(replace(base, i, num_blocks=base[i].num_blocks - 1))  # type: ignore[attr-defined]
    assert summary(violations) == [("request_blocks", "r0", 39)]


def test_request_blocks_finished_without_free() -> None:
    base = list(reference_log("a"))
    i = index_of(base, BlocksFreed, request_id="r0")
    violations = check(renumber(base[:i] + base[i + 1 :]))
    assert summary(violations)[0] == ("request_blocks", "r0", 4)
    assert {v.invariant for v in violations} == {"request_blocks", "kv_accounting"}


def test_request_blocks_too_few_for_computed() -> None:
    base = list(reference_log("a"))
    i = index_of(base, BlocksAllocated, request_id="r0")
    log = replace(base, i, num_new_blocks=0)
    j = index_of(log, BlocksFreed, request_id="r0")
    log = replace(log, j, num_blocks=0)
    violations = check(log)
    assert summary(violations)[0] == ("request_blocks", "r0", 0)
    assert {v.invariant for v in violations} == {"request_blocks", "kv_accounting"}


def test_output_bounds() -> None:
    base = list(reference_log("a"))
    violations = check(replace(base, 1, max_tokens=4))
    assert summary(violations) == [("length_cap", "r0", 3), ("output_bounds", "r0", 4)]


def test_min_tokens() -> None:
    base = list(reference_log("a"))
    assert summary(check(replace(base, 1, min_tokens=6))) == [("min_tokens", "r0", 4)]


def test_min_tokens_waived_at_max_model_len() -> None:
    base = list(reference_log("a"))
    log = replace(base, 1, min_tokens=6)
    log = replace(log, 0, max_model_len=17)
    assert check(log) == []


def test_length_cap_early() -> None:
    base = list(reference_log("a"))
    assert summary(check(replace(base, 1, max_tokens=6))) == [("length_cap", "r0", 4)]


def test_step_summary() -> None:
    base = list(reference_log("d"))
    i = index_of(base, StepFinished, step=3)
    e = base[i]
    log = replace(base, i, num_waiting=e.num_waiting + 1)  # type: ignore[attr-defined]
    assert summary(check(log)) == [("step_summary", None, 3)]


def test_step_summary_at_step_start() -> None:
    base = list(reference_log("d"))
    i = index_of(base, StepStarted, step=3)
    log = replace(base, i, num_running=0)
    assert summary(check(log)) == [("step_summary", None, 3)]


def test_all_finished() -> None:
    base = list(reference_log("a"))
    late = msgspec.structs.replace(base[1], request_id="late", step=5)
    assert summary(check(renumber([*base, late]))) == [("all_finished", "late", 4)]


def test_kv_drained() -> None:
    base = list(reference_log("a"))
    late = msgspec.structs.replace(base[1], request_id="late", step=5)
    grab = BlocksAllocated(
        seq=0, step=5, ts_ns=0, request_id="late", num_new_blocks=1, num_cached_blocks=0
    )
    violations = check(renumber([*base, late, grab]))
    assert summary(violations) == [("all_finished", "late", 4), ("kv_drained", "late", 4)]


def test_kv_drained_pool_not_free() -> None:
    base = list(reference_log("a"))
    config: EngineConfigured = base[0]  # type: ignore[assignment]
    log = replace(base, 0, num_gpu_blocks=config.num_gpu_blocks + 1)
    violations = check(log)
    assert ("kv_drained", None, 4) in summary(violations)
    assert {v.invariant for v in violations} == {"kv_accounting", "kv_drained"}


def test_every_invariant_has_a_corruption_test() -> None:
    names = {
        name.removeprefix("test_")
        for name, obj in globals().items()
        if name.startswith("test_") and callable(obj)
    }
    missing = [inv for inv in INVARIANTS if not any(n.startswith(inv) for n in names)]
    assert missing == []


def test_added_request_event_is_checked_by_type() -> None:
    # RequestAdded is what creates a request: without it, everything is unknown.
    base = list(reference_log("a"))
    i = index_of(base, RequestAdded)
    violations = check(renumber(base[:i] + base[i + 1 :]))
    assert ("request_identity", "r0", 0) in summary(violations)


_STATUSES = st.sampled_from(list(S))


@st.composite
def corrupted_logs(draw: st.DrawFn) -> list[Event]:
    """A reference log with events dropped, duplicated, moved or given other field values."""
    log = list(reference_log(draw(st.sampled_from("abcd"))))
    for _ in range(draw(st.integers(1, 6))):
        i = draw(st.integers(0, len(log) - 1))
        action = draw(st.sampled_from(["drop", "duplicate", "move", "status", "count", "id"]))
        e = log[i]
        if action == "drop":
            del log[i]
        elif action == "duplicate":
            log.insert(i, e)
        elif action == "move":
            log.insert(draw(st.integers(0, len(log) - 1)), log.pop(i))
        elif action == "status" and isinstance(e, StatusChanged):
            log[i] = msgspec.structs.replace(
                e, old_status=draw(_STATUSES), new_status=draw(_STATUSES)
            )
        elif action == "count" and isinstance(e, CounterUpdated):
            log[i] = msgspec.structs.replace(
                e, old=draw(st.integers(-2, 99)), new=draw(st.integers(-2, 99))
            )
        elif action == "id" and hasattr(e, "request_id"):
            log[i] = msgspec.structs.replace(
                e, request_id=draw(st.sampled_from(["r0", "r1", "zz"]))
            )
    return log


@settings(max_examples=200)
@given(log=corrupted_logs())
def test_checker_never_raises(log: list[Event]) -> None:
    """Whatever the stream, the checker reports violations instead of raising."""
    violations = check(log)
    assert all(v.invariant in INVARIANTS for v in violations)


# -- async scheduling and the priority policy -----------------------------------

V2 = DATA.parent / "vllm_examples_v2"


def v2_log(name: str) -> tuple[Event, ...]:
    """The event log of one second-set reference workload (async scheduling, priority)."""
    return workload_log(V2 / f"{name}.json")


@pytest.mark.parametrize("name", ["e_async", "f_priority", "g_async_preempt", "h_async_priority"])
def test_async_and_priority_reference_runs_are_clean(name: str) -> None:
    assert check(v2_log(name)) == []


def test_async_decode_gap_counts_the_placeholders() -> None:
    # A sampled token dropped from the log: num_computed_tokens is then one
    # ahead of num_tokens + placeholders - 1 at the end of that step.
    base = list(v2_log("e_async"))
    i = index_of(base, CounterUpdated, counter="num_tokens", step=2, request_id="r0")
    violations = check(renumber(base[:i] + base[i + 1 :]))
    assert summary(violations)[0] == ("decode_gap", "r0", 2)


def test_async_computed_bounds_counts_the_placeholders() -> None:
    base = list(v2_log("e_async"))
    i = index_of(base, CounterUpdated, counter="num_computed_tokens", step=1, request_id="r0")
    violations = check(replace(base, i, new=base[i].new + 1))
    assert summary(violations)[0] == ("computed_bounds", "r0", 1)


def test_an_async_log_without_its_placeholder_events_breaks_the_decode_gap() -> None:
    # Without the placeholders, num_computed_tokens runs ahead of num_tokens - 1.
    base = list(v2_log("e_async"))
    assert check(base) == []
    no_placeholders = [
        e
        for e in base
        if not (isinstance(e, CounterUpdated) and e.counter == "num_output_placeholders")
    ]
    violations = check(renumber(no_placeholders))
    assert "decode_gap" in {v.invariant for v in violations}


def test_finishing_from_preempted_is_legal_only_under_async_scheduling() -> None:
    # Async: r1's token is in flight when r0's growth preempts it; the token
    # is EOS, so vLLM's update_from_output finishes r1 from PREEMPTED.
    config = engine_config(2, 16, 2, 5, 8, async_scheduling=True)
    requests = (
        WorkloadRequest("r0", [10] * 3, SamplingParams(max_tokens=8)),
        WorkloadRequest("r1", [11] * 3, SamplingParams(max_tokens=8)),
    )
    log: list[Event] = []
    run_scenario(
        Scenario(config, requests, ScriptedSampler({"r1": {1: EOS_TOKEN_ID}})), [log.append]
    )
    i = index_of(log, StatusChanged, request_id="r1", new_status=S.FINISHED_STOPPED)
    assert log[i].old_status is S.PREEMPTED
    assert check(log) == []
    violations = check(replace(log, 0, async_scheduling=False))
    assert ("legal_transition", "r1", log[i].step) in summary(violations)


def test_priority_preemption_takes_the_lowest_priority_latest_arrival() -> None:
    # f_priority preempts r0 (priority 5) at step 13 for r1 (priority 1); read
    # as a FCFS log, r0 was not the last running request.
    base = list(v2_log("f_priority"))
    assert check(base) == []
    as_fcfs = check(replace(base, 0, policy="fcfs"))
    assert ("preempt_last", "r0", 13) in summary(as_fcfs)
    # Give r0 the highest priority: preempting it is now the wrong choice.
    i = index_of(base, RequestAdded, request_id="r0")
    violations = check(replace(base, i, priority=0))
    assert summary(violations)[0][:2] == ("preempt_last", "r0")


def test_ignore_leaves_out_the_named_rules_only() -> None:
    log = admissions_swapped(reference_log("d"), "r1", "r2")
    checker = InvariantChecker(ignore={"fcfs_order"})
    for e in log:
        checker(e)
    assert checker.finish() == []
    assert summary(check(log)) == [("fcfs_order", "r2", 0)]
    with pytest.raises(ValueError, match="ignore names no rule"):
        InvariantChecker(ignore={"fcfs"})


def test_lifecycle_trace_check_names_the_package_and_calling_it_checks() -> None:
    # `import lifecycle_trace.check as c` once gave the function `check`, which
    # the top-level package re-exported under the subpackage's name.
    assert isinstance(check_package, ModuleType)
    assert check_package.InvariantChecker is InvariantChecker
    assert lifecycle_trace.check is check_package
    broken = replace(reference_log("b"), 0, max_num_batched_tokens=255)
    assert lifecycle_trace.check(broken) == check(broken) != []
    assert check_package(broken, decisions=False) == check(broken, decisions=False)


def test_one_token_prompts_under_async_scheduling_are_clean() -> None:
    # A one-token prompt is admitted, computed and given its output placeholder
    # in one step; on a cache this small the three requests also preempt each other.
    config = engine_config(128, 2048, 2, 6, 10, async_scheduling=True)
    log = _engine_log([("r0", 1, 0), ("r1", 1, 0), ("r2", 1, 0)], config)
    assert index_of(log, StatusChanged, new_status=S.PREEMPTED) > 0
    assert check(log) == []
