"""The one fold: each life of each request, and the scheduler's queues, rebuilt from events."""

from __future__ import annotations

from collections import Counter

from hypothesis import given
from hypothesis import settings

from lifecycle_trace import EventLog
from lifecycle_trace.fold import RequestFold
from lifecycle_trace.fold import RequestKey
from lifecycle_trace.fold import TimelineBuilder
from lifecycle_trace.fold import intervals_of
from lifecycle_trace.fold import iter_timelines
from lifecycle_trace.fold import timeline_of
from lifecycle_trace.testing import FakeClock
from lifecycle_trace.testing import Scenario
from lifecycle_trace.testing import run_scenario
from lifecycle_trace.testing import scenarios
from minivllm.engine.llm_engine import LLMEngine
from minivllm.events import CounterUpdated
from minivllm.events import Event
from minivllm.events import RequestAdded
from minivllm.events import StepFinished
from minivllm.request import RequestStatus
from minivllm.sampling_params import SamplingParams


@settings(max_examples=30)
@given(scenario=scenarios())
def test_the_fold_keeps_the_schedulers_queues_and_counters(
    scenario: Scenario, workloads: Counter[str]
) -> None:
    workloads["fold queues"] += 1
    fold = RequestFold(keep_finished=False)
    problems: list[str] = []

    def after_step(engine: LLMEngine) -> None:
        sched = engine.scheduler
        if list(fold.running) != [r.request_id for r in sched.running]:
            problems.append(f"running {list(fold.running)} vs {sched.running}")
        waiting = [t.request_id for t in fold.waiting]
        engine_waiting = [r.request_id for r in sched.waiting]
        if engine.config.policy == "priority":
            # The engine's queue is a heap; the fold keeps arrival order.
            waiting, engine_waiting = sorted(waiting), sorted(engine_waiting)
        if waiting != engine_waiting:
            problems.append(f"waiting {fold.waiting} vs {list(sched.waiting)}")
        blocks = engine.scheduler.kv_cache_manager.req_to_blocks
        for rid, r in sched.requests.items():
            t = fold.live[rid]
            have = (t.status, t.num_computed_tokens, t.num_tokens, t.num_cached_tokens)
            want = (r.status, r.num_computed_tokens, r.num_tokens, r.num_cached_tokens)
            if have != want or t.num_blocks != len(blocks.get(rid, ())):
                problems.append(f"{rid}: {have} {t.num_blocks} vs {want} {blocks.get(rid)}")
        # Retired at the end of their step: only unfinished requests are left.
        if set(fold.live) != set(sched.requests):
            problems.append(f"live {set(fold.live)} vs {set(sched.requests)}")

    run_scenario(scenario, (fold,), after_step=after_step)
    assert not problems, problems[:5]
    fold.retire()  # an abort after the last step finishes no step
    assert fold.num_live == 0 and fold.num_blocks_held == 0


def _reuse_a_request_id() -> list[Event]:
    log = EventLog()
    engine = LLMEngine(observers=[log], clock=FakeClock(), max_model_len=64)
    params = SamplingParams(max_tokens=2, ignore_eos=True)
    for prompt in ([5] * 4, [6] * 9):
        engine.add_request(prompt, params, request_id="same")
        while engine.has_unfinished_requests():
            engine.step()
    return list(log)


def test_a_reused_request_id_starts_a_new_life() -> None:
    events = _reuse_a_request_id()
    fold = RequestFold()
    fold.feed_all(events)
    first, second = fold.states()
    assert first.key == RequestKey("engine-0", "same", first.life)
    assert first.key != second.key and first.request_id == second.request_id
    assert (first.num_prompt_tokens, second.num_prompt_tokens) == (4, 9)
    assert first.finished and second.finished and first.index == 0 and second.index == 1
    streamed = list(iter_timelines(events))
    assert [t.key for t in streamed] == [first.key, second.key]
    assert streamed == [timeline_of(t, fold.last_step) for t in (first, second)]
    builder = TimelineBuilder()
    builder.feed_all(events)
    assert builder.lives() == streamed


def test_finished_lives_are_retired_at_the_end_of_their_step() -> None:
    events = _reuse_a_request_id()
    retired: list[RequestKey] = []
    fold = RequestFold(on_retire=lambda t: retired.append(t.key), keep_finished=False)
    for e in events:
        fold.feed(e)
        if isinstance(e, RequestAdded):
            assert fold.num_live == 1
        if isinstance(e, StepFinished):
            assert not fold.finished and not any(t.finished for t in fold.live.values())
    assert len(retired) == 2 and fold.states() == []


def test_every_counter_is_kept_including_output_placeholders() -> None:
    events = _reuse_a_request_id()
    added = next(e for e in events if isinstance(e, RequestAdded))
    placeholder = CounterUpdated(
        seq=added.seq + 1,
        step=added.step,
        ts_ns=added.ts_ns,
        request_id=added.request_id,
        counter="num_output_placeholders",
        old=0,
        new=1,
    )
    fold = RequestFold()
    fold.feed_all([*events[: events.index(added) + 1], placeholder])
    assert fold.live["same"].num_output_placeholders == 1


def test_intervals_and_timelines_read_the_same_state() -> None:
    events = _reuse_a_request_id()
    fold = RequestFold()
    fold.feed_all(events[: len(events) // 3])
    (t,) = [t for t in fold.states() if not t.finished]
    timeline, intervals = timeline_of(t, fold.last_step), intervals_of(t, fold.last_ts_ns)
    assert timeline.key == intervals.key == t.key
    assert [iv.status for iv in intervals.intervals] == list(timeline.status_sequence)
    assert intervals.intervals[-1].open_end and timeline.finish_status is None
    assert timeline.status == t.status != RequestStatus.WAITING


@settings(max_examples=20)
@given(scenario=scenarios())
def test_token_callbacks_see_every_sampled_token_once(scenario: Scenario) -> None:
    log = EventLog()
    run_scenario(scenario, [log], clock=FakeClock())
    events = list(log)
    token_events = [
        e for e in events if isinstance(e, CounterUpdated) and e.counter == "num_tokens"
    ]
    for fast in (True, False):
        seen: list[tuple[str, int, int | None]] = []
        fold = RequestFold(
            on_first_token=lambda t, seen=seen: seen.append((t.request_id, t.num_tokens, None)),
            on_next_token=lambda t, e, seen=seen: seen.append(
                (t.request_id, e.new, t.last_token_ns)
            ),
            keep_finished=False,
        )
        if fast:
            fold.feed_all(events)
        else:
            for e in events:
                fold.feed(e)
        assert [(rid, n) for rid, n, _ in seen] == [(e.request_id, e.new) for e in token_events]
        # A later token's callback comes before the state takes it: the time is the token before's.
        previous: dict[str, int] = {}
        for (rid, _, before), e in zip(seen, token_events, strict=True):
            if before is not None:
                assert before == previous[rid]
            previous[rid] = e.ts_ns
