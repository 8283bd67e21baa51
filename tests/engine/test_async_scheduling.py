"""Async scheduling: output placeholders, the batch queue, the early skip, aborts in flight."""

from __future__ import annotations

from pathlib import Path

from helpers.engine import assert_no_leak
from helpers.engine import engine_config
from helpers.engine import make_engine
from helpers.engine import run_to_end
from minivllm import LLMEngine
from minivllm import RequestStatus
from minivllm import SamplingParams
from minivllm.events import CounterUpdated
from minivllm.events import EngineConfigured
from minivllm.events import RequestAdded
from minivllm.model_executor import DummyModelRunner
from minivllm.model_executor import output_index
from minivllm.request import Request
from minivllm.workload import Workload
from minivllm.workload import WorkloadRequest
from minivllm.workload import run_workload

EOS = 257
V2 = Path(__file__).parent.parent / "data" / "vllm_examples_v2"


def state(engine: LLMEngine, request_id: str) -> tuple[str, int, int, int, int]:
    """(status, num_computed_tokens, num_tokens, num_output_tokens, num_output_placeholders)."""
    r = engine.scheduler.requests[request_id]
    return (
        r.status.name,
        r.num_computed_tokens,
        r.num_tokens,
        r.num_output_tokens,
        r.num_output_placeholders,
    )


def processed(engine: LLMEngine) -> list[str] | None:
    """The ids of the batch the last step processed, None if it processed none."""
    assert engine.last_step is not None
    batch = engine.last_step.processed
    return None if batch is None else list(batch.num_scheduled_tokens)


def test_counters_run_one_placeholder_ahead() -> None:
    engine = make_engine(async_scheduling=True)
    rid = engine.add_request([1] * 12, SamplingParams(max_tokens=3))
    engine.step()  # schedules the prefill; its output is still in flight
    assert state(engine, rid) == ("RUNNING", 12, 12, 0, 1)
    assert processed(engine) is None
    engine.step()  # schedules decode 1, processes the prefill's token
    assert state(engine, rid) == ("RUNNING", 13, 13, 1, 1)
    assert processed(engine) == [rid]
    engine.step()
    assert state(engine, rid) == ("RUNNING", 14, 14, 2, 1)
    # The third token is in flight, and it is the last: nothing more is scheduled.
    (out,) = engine.step()
    assert engine.last_step is not None and engine.last_step.scheduled is not None
    assert engine.last_step.scheduled.num_scheduled_tokens == {}
    assert out.finished and out.outputs[0].token_ids == [7, 7, 7]
    assert not engine.has_unfinished_requests()
    # Two more steps drain the finished id and the empty batch still queued.
    assert engine.has_work()
    engine.step()
    engine.step()
    assert not engine.has_work()
    assert_no_leak(engine)


def test_early_skip_schedules_exactly_max_tokens_samples() -> None:
    samples: list[int] = []

    def sample(request: Request) -> int:
        samples.append(output_index(request))
        return 7

    engine = make_engine(model=DummyModelRunner(sample_fn=sample), async_scheduling=True)
    engine.add_request([1] * 5, SamplingParams(max_tokens=4))
    while engine.has_work():
        engine.step()
    # Without the skip a fifth decode would be scheduled before the fourth token is seen.
    assert samples == [0, 1, 2, 3]


def test_decoding_request_keeps_computed_one_ahead_of_tokens_plus_placeholders() -> None:
    engine = make_engine(
        async_scheduling=True, max_num_seqs=4, max_num_batched_tokens=8, block_size=4
    )
    engine.add_request([1] * 20, SamplingParams(max_tokens=6), request_id="long")
    engine.add_request([2] * 3, SamplingParams(max_tokens=6), request_id="short")
    while engine.has_unfinished_requests():
        engine.step()
        for r in engine.scheduler.running:
            if r.is_prefill_chunk:
                assert r.num_output_placeholders == 0
                assert r.num_computed_tokens < r.num_tokens
            else:
                assert r.num_output_placeholders == 1
                assert r.num_computed_tokens == r.num_tokens + r.num_output_placeholders - 1


def test_abort_while_the_batch_is_in_flight_discards_its_output() -> None:
    engine = make_engine(async_scheduling=True)
    engine.add_request([1] * 8, SamplingParams(max_tokens=10), request_id="a")
    engine.add_request([2] * 8, SamplingParams(max_tokens=3), request_id="b")
    engine.step()
    engine.step()
    assert state(engine, "a") == ("RUNNING", 9, 9, 1, 1)
    aborted = engine.scheduler.requests["a"]
    engine.abort_request("a")
    assert aborted.status == RequestStatus.FINISHED_ABORTED
    assert "a" not in engine.scheduler.kv_cache_manager.req_to_blocks
    engine.step()  # processes the batch that still holds "a"
    assert processed(engine) == ["a", "b"]
    assert aborted.num_tokens == 9  # its in-flight token was dropped
    final = run_to_end(engine)
    assert set(final) == {"b"}
    while engine.has_work():
        engine.step()
    assert_no_leak(engine)


def test_request_preempted_with_a_token_in_flight_can_stop_from_preempted() -> None:
    # The g_async_preempt reference run, with r2's in-flight token made EOS: r2 is
    # preempted in step 4 while the batch of step 3 still holds it; processing
    # that batch finishes it from PREEMPTED and takes it out of the waiting queue.
    base = Workload.load(V2 / "g_async_preempt.json")
    r2 = base.requests[2]
    eos_r2 = WorkloadRequest(
        r2.id, r2.prompt_token_ids, r2.sampling_params, arrival=r2.arrival, eos_at=1
    )
    requests = (*base.requests[:2], eos_r2)
    workload = Workload(base.engine_kwargs, requests, trace_format=2)
    records = list(run_workload(workload))
    step4 = records[4]
    assert step4.preempted == ["r2"]
    assert step4.reqs["r2"] == ["FINISHED_STOPPED", 0, 7, 2, 0, 1]
    assert records[-1].reqs["r0"][0] == "FINISHED_LENGTH_CAPPED"
    assert records[-1].reqs["r1"][0] == "FINISHED_LENGTH_CAPPED"


def test_refused_output_takes_back_the_placeholders_too() -> None:
    class BrokenOnce(DummyModelRunner):
        def __init__(self) -> None:
            super().__init__(token_id=7)
            self.calls = 0

        def execute_model(self, scheduler_output):  # type: ignore[no-untyped-def]
            self.calls += 1
            out = super().execute_model(scheduler_output)
            if self.calls == 2:
                out.sampled_token_ids[0].append(7)  # two tokens for one request
            return out

    engine = make_engine(model=BrokenOnce(), async_scheduling=True)
    engine.add_request([1] * 6, SamplingParams(max_tokens=4), request_id="r")
    engine.step()
    assert state(engine, "r") == ("RUNNING", 6, 6, 0, 1)
    try:
        engine.step()
    except ValueError as exc:
        assert "exactly one token id" in str(exc)
    else:
        raise AssertionError("the broken output was accepted")
    assert state(engine, "r") == ("RUNNING", 6, 6, 0, 1)
    final = run_to_end(engine)
    assert final["r"].outputs[0].token_ids == [7, 7, 7, 7]


def test_sync_and_async_give_the_same_outputs() -> None:
    prompts = [[i + 1] * (3 + 5 * i) for i in range(5)]
    params = [SamplingParams(max_tokens=2 + i, stop_token_ids=[9]) for i in range(5)]

    def run(async_scheduling: bool) -> dict[str, tuple[list[int], str | None]]:
        sample_fn = _eos_at({"2": 1, "4": 0})
        config = engine_config(3, 12, 4, 12, 40, async_scheduling=async_scheduling)
        engine = make_engine(config, model=DummyModelRunner(sample_fn=sample_fn))
        for i, (prompt, p) in enumerate(zip(prompts, params, strict=True)):
            engine.add_request(prompt, p, request_id=str(i))
        final = run_to_end(engine)
        return {k: (v.outputs[0].token_ids, v.outputs[0].finish_reason) for k, v in final.items()}

    assert run(True) == run(False)


def _eos_at(positions: dict[str, int]):  # type: ignore[no-untyped-def]
    def sample(request: Request) -> int:
        if positions.get(request.request_id) == output_index(request):
            return EOS
        return 7

    return sample


def test_events_carry_the_mode_and_every_placeholder_change() -> None:
    events: list[object] = []
    engine = make_engine(async_scheduling=True, policy="priority", observers=[events.append])
    engine.add_request([1] * 6, SamplingParams(max_tokens=3, temperature=0.5), priority=2)
    engine.add_request([2] * 4, SamplingParams(max_tokens=2), request_id="b")
    placeholders: dict[str, int] = {}
    seen = 0
    while engine.has_work():
        engine.step()
        for e in events[seen:]:
            if isinstance(e, CounterUpdated) and e.counter == "num_output_placeholders":
                assert placeholders.get(e.request_id, 0) == e.old
                placeholders[e.request_id] = e.new
        seen = len(events)
        for rid, r in engine.scheduler.requests.items():
            assert placeholders.get(rid, 0) == r.num_output_placeholders
    assert set(placeholders) == {"0", "b"}
    configured = events[0]
    assert isinstance(configured, EngineConfigured)
    assert (configured.policy, configured.async_scheduling) == ("priority", True)


def test_request_added_carries_priority_and_sampling() -> None:
    added: list[RequestAdded] = []
    engine = make_engine(policy="priority")
    engine.bus.subscribe(added.append, RequestAdded)
    engine.add_request([1, 2], SamplingParams(temperature=0.25, top_p=0.5), priority=-3)
    (event,) = added
    assert (event.priority, event.temperature, event.top_p, event.n) == (-3, 0.25, 0.5, 1)
