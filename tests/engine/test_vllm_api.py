"""vLLM's engine API runs as written: add_request's order, prompt dicts, abort lists, EngineArgs."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from helpers.engine import make_engine
from helpers.engine import run_to_end
from minivllm import EngineArgs
from minivllm import LLMEngine
from minivllm import RequestStatus
from minivllm import SamplingParams
from minivllm.events import RequestAdded


def added(engine: LLMEngine) -> list[RequestAdded]:
    events: list[RequestAdded] = []
    engine.bus.subscribe(events.append, RequestAdded)
    return events


def test_vllm_example_code_runs_unchanged() -> None:
    # As vLLM's examples/offline_inference/llm_engine_example.py drives the engine.
    engine_args = EngineArgs(model="dummy", max_num_seqs=4, scheduling_policy="priority")
    engine = LLMEngine.from_engine_args(engine_args)
    test_prompts = [
        ("A robot may not injure a human being", SamplingParams(temperature=0.0, max_tokens=4)),
        ("To be or not to be,", SamplingParams(temperature=0.8, top_p=0.95, max_tokens=3)),
    ]
    request_id = 0
    finished = {}
    while test_prompts or engine.has_unfinished_requests():
        if test_prompts:
            prompt, sampling_params = test_prompts.pop(0)
            engine.add_request(str(request_id), prompt, sampling_params, priority=request_id)
            request_id += 1
        for request_output in engine.step():
            if request_output.finished:
                finished[request_output.request_id] = request_output
    assert sorted(finished) == ["0", "1"]
    assert finished["0"].prompt == "A robot may not injure a human being"
    assert len(finished["0"].outputs[0].token_ids) == 4
    assert len(finished["1"].outputs[0].token_ids) == 3


@pytest.mark.parametrize(
    "call",
    [
        # vLLM's order: (request_id, prompt, params, arrival_time, ..., priority)
        lambda e, p: e.add_request("r", [1, 2, 3], p, 5.0, priority=2),
        lambda e, p: e.add_request("r", [1, 2, 3], p, arrival_time=5.0, priority=2),
        lambda e, p: e.add_request("r", [1, 2, 3], p, 5.0, None, None, None, 2),
        lambda e, p: e.add_request(
            request_id="r", prompt=[1, 2, 3], params=p, arrival_time=5.0, priority=2
        ),
        lambda e, p: e.add_request("r", prompt=[1, 2, 3], params=p, arrival_time=5.0, priority=2),
        # the lab's order: (prompt, sampling_params, request_id, priority, arrival_time)
        lambda e, p: e.add_request([1, 2, 3], p, "r", 2, 5.0),
        lambda e, p: e.add_request([1, 2, 3], p, request_id="r", priority=2, arrival_time=5.0),
        lambda e, p: e.add_request(
            prompt=[1, 2, 3], sampling_params=p, request_id="r", priority=2, arrival_time=5.0
        ),
    ],
)
def test_both_argument_orders_queue_the_same_request(call: Any) -> None:
    engine = make_engine()
    params = SamplingParams(max_tokens=2)
    assert call(engine, params) == "r"
    request = engine.scheduler.requests["r"]
    assert request.prompt_token_ids == [1, 2, 3]
    assert request.sampling_params == params
    assert request.priority == 2
    assert request.arrival_time == 5.0


def test_the_lab_order_without_params_or_id_still_works() -> None:
    engine = make_engine()
    first = engine.add_request("hello")
    second = engine.add_request("hello", None)
    assert (first, second) == ("0", "1")
    assert engine.scheduler.requests["0"].sampling_params == SamplingParams()


@pytest.mark.parametrize(
    ("prompt", "text", "token_ids"),
    [
        ({"prompt": "hi"}, "hi", [104, 105]),
        ({"prompt_token_ids": [104, 105]}, None, [104, 105]),
        ({"prompt_token_ids": [104, 105], "prompt": "hi"}, "hi", [104, 105]),
    ],
)
def test_vllm_prompt_dicts(prompt: Any, text: str | None, token_ids: list[int]) -> None:
    for order in ("vllm", "lab"):
        engine = make_engine()
        params = SamplingParams(max_tokens=1)
        if order == "vllm":
            engine.add_request("r", prompt, params)
        else:
            engine.add_request(prompt, params, "r")
        request = engine.scheduler.requests["r"]
        assert (request.prompt, request.prompt_token_ids) == (text, token_ids)
        assert run_to_end(engine)["r"].prompt == text


def test_prompt_text_names_a_token_prompt_in_vllms_order() -> None:
    engine = make_engine()
    engine.add_request("r", [104, 105], SamplingParams(), prompt_text="hi")
    assert engine.scheduler.requests["r"].prompt == "hi"


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (
            lambda e: e.add_request("r", {"prompt": "x", "multi_modal_data": {}}, None),
            ValueError,
            r"does not support: \['multi_modal_data'\]",
        ),
        (lambda e: e.add_request("r", {"prompt": 3}, None), TypeError, "prompt must be a string"),
        (
            lambda e: e.add_request("r", {"prompt_token_ids": "ab"}, None),
            TypeError,
            "must be a list of token ids",
        ),
        (lambda e: e.add_request(7, "x", None), TypeError, "request_id must be a string, got int"),
        (lambda e: e.add_request("r", "x"), TypeError, "missing a required argument: 'params'"),
        (lambda e: e.add_request("r", "x", None, None, "lora"), ValueError, "LoRA"),
        (
            lambda e: e.add_request("r", "x", None, trace_headers={"traceparent": "00-1"}),
            ValueError,
            "trace_headers are not supported",
        ),
        (
            lambda e: e.add_request("r", "x", None, tokenization_kwargs={"truncation": True}),
            ValueError,
            "tokenization_kwargs are not supported",
        ),
        (
            lambda e: e.add_request([1], {"max_tokens": 3}),
            TypeError,
            "sampling_params must be a SamplingParams, got dict",
        ),
        (
            lambda e: e.add_request([1], None, "r", 0, None, "extra"),
            TypeError,
            "the lab's order .*too many positional arguments",
        ),
    ],
)
def test_bad_calls_are_refused_clearly(call: Any, error: type[Exception], message: str) -> None:
    engine = make_engine()
    with pytest.raises(error, match=message):
        call(engine)
    assert not engine.scheduler.requests


@given(st.lists(st.sampled_from("abcdef"), unique=True, max_size=6))
def test_abort_request_takes_a_list(ids: list[str]) -> None:
    engine = make_engine()
    for rid in "abcdef":
        engine.add_request(rid, [1, 2], SamplingParams(max_tokens=5))
    engine.step()
    engine.abort_request(ids)
    engine.abort_request(["never-added"])
    statuses = {rid: r.status for rid, r in engine.scheduler.requests.items()}
    assert set(statuses) == set("abcdef") - set(ids)
    assert all(s is RequestStatus.RUNNING for s in statuses.values())


def test_abort_request_takes_one_id() -> None:
    engine = make_engine()
    engine.add_request("a", [1, 2], SamplingParams(max_tokens=5))
    engine.abort_request("a")
    assert not engine.has_unfinished_requests()


def test_from_engine_args_configures_the_engine() -> None:
    args = EngineArgs(
        max_num_seqs=3,
        max_num_batched_tokens=128,
        max_model_len=128,
        block_size=8,
        num_gpu_blocks_override=40,
        enable_prefix_caching=True,
        enable_chunked_prefill=False,
        long_prefill_token_threshold=16,
        scheduler_reserve_full_isl=False,
        scheduling_policy="priority",
        async_scheduling=True,
        seed=11,
    )
    engine = LLMEngine.from_engine_args(args, engine_id="e7")
    c = engine.config
    assert (c.max_num_seqs, c.max_num_batched_tokens, c.max_model_len) == (3, 128, 128)
    assert (c.block_size, c.num_gpu_blocks, c.long_prefill_token_threshold) == (8, 40, 16)
    assert c.enable_prefix_caching and not c.enable_chunked_prefill
    assert not c.scheduler_reserve_full_isl and c.async_scheduling and c.policy == "priority"
    assert (engine.seed, engine.engine_id) == (11, "e7")
    assert LLMEngine.from_engine_args(EngineArgs()).config.num_gpu_blocks == 2048


def test_engine_args_are_validated() -> None:
    with pytest.raises(ValueError, match="scheduling_policy must be one of"):
        EngineArgs(scheduling_policy="lifo")
    with pytest.raises(ValueError, match="max_num_seqs must be a positive integer"):
        LLMEngine.from_engine_args(EngineArgs(max_num_seqs=0))
    with pytest.raises(TypeError, match="engine_args must be an EngineArgs, got dict"):
        LLMEngine.from_engine_args({"model": "dummy"})  # type: ignore[arg-type]


def test_request_output_repr_shows_the_text() -> None:
    engine = make_engine(model="dummy")
    engine.add_request("r", "hi", SamplingParams(max_tokens=3))
    text = repr(run_to_end(engine)["r"])
    assert "text='hih'" in text
    assert text.startswith("RequestOutput(request_id='r', prompt='hi', prompt_token_ids=[104, 105]")
    assert "CompletionOutput(index=0, text='hih', token_ids=[104, 105, 104], " in text
    assert "finish_reason=length, stop_reason=None)" in text


def test_n_is_accepted_when_it_is_one() -> None:
    assert SamplingParams(n=1).n == 1
    with pytest.raises(ValueError, match="n=2 is not supported"):
        SamplingParams(n=2)
    with pytest.raises(ValueError, match="n must be at least 1, got 0"):
        SamplingParams(n=0)


def test_request_added_carries_what_the_request_asked_for() -> None:
    engine = make_engine(policy="priority")
    events = added(engine)
    engine.add_request("r", [1, 2], SamplingParams(temperature=0.25, top_p=0.5, n=1), priority=4)
    engine.add_request([3], None, "s")
    r, s = events
    assert (r.priority, r.temperature, r.top_p, r.n) == (4, 0.25, 0.5, 1)
    assert (s.priority, s.temperature, s.top_p, s.n) == (0, 1.0, 1.0, 1)
