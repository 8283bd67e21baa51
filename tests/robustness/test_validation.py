"""Every value is checked where it enters; a refusal says what, what was expected, what came.

Integers must fit in 64 bits (a log holds 64-bit numbers: a larger one could
not be written, and its event would go missing); a bool is never a number;
numpy integers are integers; a refused call changes nothing.
"""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np
import pytest

from lifecycle_trace.log import EventLog
from minivllm import LLM
from minivllm import LLMEngine
from minivllm import SamplingParams
from minivllm.events import RequestAdded

BIG = 2**64
HUGE = 2**70


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"max_tokens": HUGE}, "max_tokens"),
        ({"max_tokens": 2**63}, "max_tokens"),
        ({"max_tokens": True}, "max_tokens"),
        ({"max_tokens": 3.0}, "max_tokens"),
        ({"min_tokens": BIG}, "min_tokens"),
        ({"top_k": BIG}, "top_k"),
        ({"top_k": False}, "top_k"),
        ({"seed": HUGE}, "seed"),
        ({"seed": -(2**64)}, "seed"),
        ({"seed": True}, "seed"),
        ({"seed": "7"}, "seed"),
        ({"stop_token_ids": [BIG]}, "stop_token_ids[0]"),
        ({"stop_token_ids": HUGE}, "stop_token_ids"),
        ({"stop_token_ids": "abc"}, "stop_token_ids"),
        ({"stop_token_ids": [1, 2.5]}, "stop_token_ids[1]"),
        ({"stop_token_ids": [True]}, "stop_token_ids[0]"),
        ({"stop_token_ids": {"a": 1}}, "stop_token_ids"),
        ({"top_p": True}, "top_p"),
        ({"top_p": math.nan}, "top_p"),
        ({"top_p": "0.5"}, "top_p"),
        ({"temperature": True}, "temperature"),
        ({"temperature": math.inf}, "temperature"),
        ({"temperature": math.nan}, "temperature"),
        ({"temperature": HUGE}, "temperature"),
        ({"stop": 5}, "stop"),
        ({"stop": [5]}, "stop"),
        ({"stop": b"end"}, "stop"),
        ({"stop": ["ok", ""]}, "stop"),
        ({"ignore_eos": 1}, "ignore_eos"),
        ({"output_kind": "final"}, "output_kind"),
    ],
)
def test_bad_sampling_params_say_what_came(kwargs: dict[str, Any], name: str) -> None:
    with pytest.raises(ValueError) as info:
        SamplingParams(**kwargs)
    message = str(info.value)
    assert message.startswith(name + " ") or message.startswith(name + " (")
    assert "must" in message and "got" in message
    assert "Traceback" not in message and "not iterable" not in message


def test_numpy_numbers_are_taken_as_the_numbers_they_are() -> None:
    p = SamplingParams(
        max_tokens=np.int64(5),
        min_tokens=np.uint8(1),
        top_k=np.int32(3),
        temperature=np.float32(0.5),
        top_p=np.float64(0.9),
        seed=np.uint64(2**63),
        stop_token_ids=np.array([1, 2], dtype=np.int16),
    )
    assert (p.max_tokens, p.min_tokens, p.top_k, p.seed) == (5, 1, 3, 2**63)
    assert [type(v) for v in (p.max_tokens, p.min_tokens, p.top_k, p.seed)] == [int] * 4
    assert p.stop_token_ids == (1, 2) and all(type(t) is int for t in p.stop_token_ids)
    assert type(p.temperature) is float and type(p.top_p) is float


def test_the_largest_64_bit_values_are_logged() -> None:
    log = EventLog()
    engine = LLMEngine(observers=[log], max_model_len=32)
    engine.add_request([1, 2], SamplingParams(max_tokens=2**63 - 1, stop_token_ids=[2**63 - 1]))
    while engine.has_unfinished_requests():
        engine.step()
    (added,) = [e for e in log if isinstance(e, RequestAdded)]
    assert added.stop_token_ids == (2**63 - 1,)


@pytest.mark.parametrize(
    ("prompt", "says"),
    [
        ({"text": "hi"}, "prompt must be a string, a list of token ids, or a prompt dict"),
        ({}, "prompt must be a string, a list of token ids, or a prompt dict"),
        ({1, 2, 3}, "got set"),
        (frozenset({1}), "got frozenset"),
        (b"hello", "got bytes"),
        (None, "got NoneType"),
        (5, "got 5"),
        (1.5, "got 1.5"),
        ([], "prompt must not be empty"),
        ("", "prompt must not be empty"),
        ([1, "a"], "token id str 'a' at position 1"),
        ([True, 2], "token id bool True at position 0"),
        ([1, 2.0], "token id 2.0 at position 1"),
        ([1, BIG], "at position 1 is outside the vocabulary"),
        (np.array([1.0, 2.0]), "token id float64"),
        (np.array([[1, 2], [3, 4]]), "one-dimensional"),
        (np.array([True, False]), "np.True_ at position 0"),
        ({"prompt_token_ids": {1, 2}}, "got set"),
    ],
)
def test_bad_prompts_are_refused_and_change_nothing(prompt: Any, says: str) -> None:
    log = EventLog()
    engine = LLMEngine(observers=[log], max_model_len=64)
    engine.abort_request([])  # the configuration event, so nothing else is expected
    with pytest.raises((ValueError, TypeError)) as info:
        engine.add_request(prompt)
    assert says in str(info.value)
    assert not engine.has_unfinished_requests() and len(log) == 1


def test_numpy_token_arrays_are_prompts() -> None:
    engine = LLMEngine(max_model_len=64)
    rid = engine.add_request(np.array([65, 66, 67], dtype=np.int32), SamplingParams(max_tokens=2))
    same = engine.add_request([65, 66, 67], SamplingParams(max_tokens=2))
    requests = engine.scheduler.requests
    assert requests[rid].prompt_token_ids == requests[same].prompt_token_ids == [65, 66, 67]
    assert all(type(t) is int for t in requests[rid].prompt_token_ids)
    out = LLM().generate(np.array([72, 105]), SamplingParams(max_tokens=2))
    assert out[0].prompt_token_ids == [72, 105]


@pytest.mark.parametrize(
    ("kwargs", "says"),
    [
        ({"priority": BIG}, "priority"),
        ({"priority": True}, "priority"),
        ({"priority": 1.5}, "priority"),
        ({"arrival_time": "now"}, "arrival_time"),
        ({"arrival_time": math.nan}, "arrival_time"),
        ({"arrival_time": True}, "arrival_time"),
        ({"request_id": 5}, "request_id"),
        ({"request_id": ""}, "request_id"),
        ({"sampling_params": {"max_tokens": 3}}, "sampling_params"),
    ],
)
def test_bad_request_arguments_say_what_came(kwargs: dict[str, Any], says: str) -> None:
    engine = LLMEngine(max_model_len=64)
    with pytest.raises((ValueError, TypeError)) as info:
        engine.add_request([1, 2], **kwargs)
    assert str(info.value).startswith(says) and "got" in str(info.value)
    assert not engine.has_unfinished_requests()


@pytest.mark.parametrize(
    ("kwargs", "says"),
    [
        ({"seed": "x"}, "seed must be an integer"),
        ({"seed": HUGE}, "seed must be an integer"),
        ({"seed": 1.0}, "seed must be an integer"),
        ({"engine_id": 5}, "engine_id must be a non-empty string"),
        ({"engine_id": ""}, "engine_id must be a non-empty string"),
        ({"clock": "monotonic"}, "clock must be a callable"),
        ({"observers": "json-log"}, "observers must be a list of handlers or observer names"),
        ({"observers": 5}, "observers must be a list"),
        ({"observers": [print, 5]}, "observers[1] must be a handler"),
        ({"raise_observer_errors": "yes"}, "raise_observer_errors must be True or False"),
        ({"max_num_seqs": HUGE}, "max_num_seqs must fit in 64 bits"),
        ({"max_num_seqs": True}, "max_num_seqs must be a positive integer"),
        ({"max_model_len": 2**63, "num_gpu_blocks": 2**62}, "max_model_len must fit in 64 bits"),
        ({"block_size": "16"}, "block_size must be a positive integer, got str '16'"),
        ({"policy": 1}, "policy must be one of"),
        ({"async_scheduling": 1}, "async_scheduling must be a bool"),
        ({"num_gpu_blocks": 10**9}, "of memory for the block pool"),
        ({"num_gpu_blocks": 10**12}, "of memory for the block pool"),
    ],
)
def test_bad_engine_arguments_are_refused_at_construction(
    kwargs: dict[str, Any], says: str
) -> None:
    with pytest.raises(ValueError) as info:
        LLMEngine(**kwargs)
    message = str(info.value)
    assert says in message
    assert "got" in message or "GiB available" in message


def test_the_observers_hint_names_the_list_it_meant() -> None:
    with pytest.raises(ValueError, match=r"for one, observers=\['json-log'\]"):
        LLMEngine(observers="json-log")


def test_numpy_engine_sizes_are_ints() -> None:
    engine = LLMEngine(max_num_seqs=np.int64(4), num_gpu_blocks=np.int32(80))
    assert type(engine.config.max_num_seqs) is int and type(engine.config.num_gpu_blocks) is int


@pytest.mark.parametrize(
    "clock",
    [time.time, lambda: "now", lambda: 1.5, lambda: -1, lambda: True, lambda: 2**64],
)
def test_a_clock_that_does_not_give_integer_nanoseconds_is_refused(clock: Any) -> None:
    log = EventLog()
    engine = LLMEngine(observers=[log], clock=clock)
    with pytest.raises(ValueError, match="clock must return integer nanoseconds"):
        engine.add_request([1, 2])
    assert not engine.has_unfinished_requests()
    quiet = LLMEngine(clock=clock)  # no observer: the first reading is the arrival time
    with pytest.raises(ValueError, match="clock must return integer nanoseconds"):
        quiet.add_request([1, 2])


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("a", "notparams"), "sampling_params must be a SamplingParams or a list of them"),
        ((["a", "b"], [SamplingParams(), "x"]), "sampling_params[1] must be a SamplingParams"),
        ((["a", "b"], [SamplingParams()]), "sampling_params has 1 entries for 2 prompts"),
        ((5,), "prompts must be a prompt or a list of prompts"),
        (({1, 2},), "prompts must be a prompt or a list of prompts"),
        ((None,), "prompts must be a prompt or a list of prompts"),
        ((["a", "b"], None, True, 5), "priority must be a list of integers"),
        ((["a", "b"], None, True, [0, "high"]), "priority"),
    ],
)
def test_generate_refuses_bad_arguments_clearly(args: tuple[Any, ...], says: str) -> None:
    llm = LLM()
    with pytest.raises((ValueError, TypeError)) as info:
        llm.generate(*args)
    assert says in str(info.value)
    assert not llm.llm_engine.has_unfinished_requests()


@pytest.mark.parametrize("bad", [{"text": "x"}, "", [1, 999], {1, 2}])
def test_generate_checks_every_prompt_before_it_queues_any(bad: Any) -> None:
    llm = LLM()
    with pytest.raises((ValueError, TypeError), match="prompt 2: "):
        llm.generate(["fine", "also fine", bad, "never reached"], use_tqdm=False)
    assert not llm.llm_engine.has_unfinished_requests()
    # The next call sees none of the earlier prompts.
    (out,) = llm.generate(["next"], SamplingParams(max_tokens=2), use_tqdm=False)
    assert out.prompt == "next"


@pytest.mark.parametrize(
    ("ids", "says"),
    [(None, "request_ids must be"), (5, "request_ids must be"), ([1], "request_ids[0]")],
)
def test_abort_request_checks_its_ids(ids: Any, says: str) -> None:
    engine = LLMEngine(max_model_len=64)
    engine.add_request([1, 2], request_id="a")
    with pytest.raises(ValueError) as info:
        engine.abort_request(ids)
    assert str(info.value).startswith(says)
    assert engine.has_unfinished_requests()


def test_a_runner_class_is_refused_for_an_instance() -> None:
    from minivllm import DummyModelRunner

    with pytest.raises(ValueError, match=r"model must be .* got type"):
        LLMEngine(DummyModelRunner)  # type: ignore[arg-type]


def test_a_refused_request_uses_up_no_request_id() -> None:
    engine = LLMEngine(max_model_len=64)
    with pytest.raises(ValueError):
        engine.add_request([1, 2], priority="high")
    with pytest.raises(ValueError):
        engine._add_requests([([1], SamplingParams(), 0), ([], SamplingParams(), 0)])
    assert engine.add_request([1, 2]) == "0"


def test_a_generate_call_that_fails_leaves_no_request_behind() -> None:
    from minivllm import DummyModelRunner

    class FailsOnce(DummyModelRunner):
        calls = 0

        def execute_model(self, scheduler_output: Any) -> Any:
            FailsOnce.calls += 1
            if FailsOnce.calls == 3:
                raise RuntimeError("lost the device")
            return super().execute_model(scheduler_output)

    llm = LLM(FailsOnce(token_id=7), max_model_len=64)
    with pytest.raises(RuntimeError, match="lost the device"):
        llm.generate(["a", "b", "c"], SamplingParams(max_tokens=5), use_tqdm=False)
    assert not llm.llm_engine.has_unfinished_requests()
    (out,) = llm.generate(["next"], SamplingParams(max_tokens=2), use_tqdm=False)
    assert out.prompt == "next"
