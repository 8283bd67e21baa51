"""Bad input raises a clear error naming the field and value, and changes nothing."""

from __future__ import annotations

import pytest

from helpers.engine import assert_no_leak
from helpers.engine import make_engine
from helpers.engine import run_to_end
from minivllm import LLMEngine
from minivllm import ModelRunnerOutput
from minivllm import SamplingParams
from minivllm.events import RequestAdded


def test_empty_prompts_are_refused() -> None:
    engine = make_engine()
    with pytest.raises(ValueError, match="prompt must not be empty"):
        engine.add_request("")
    with pytest.raises(ValueError, match="prompt must not be empty"):
        engine.add_request([])
    assert not engine.has_unfinished_requests()


def test_prompt_of_max_model_len_is_refused() -> None:
    engine = make_engine(max_model_len=32)
    with pytest.raises(ValueError, match=r"32 tokens long.*max_model_len \(32\)"):
        engine.add_request([1] * 32)
    engine.add_request([1] * 31, SamplingParams(max_tokens=1))


@pytest.mark.parametrize("bad", [-1, 258, 1.5, True, "a"])
def test_token_ids_outside_vocabulary_are_refused(bad: object) -> None:
    engine = make_engine()
    with pytest.raises(ValueError, match=r"token id .* at position 1 is outside the vocabulary"):
        engine.add_request([1, bad, 2])  # type: ignore[list-item]
    assert not engine.has_unfinished_requests()


def test_duplicate_request_id_is_refused_without_touching_the_first() -> None:
    engine = make_engine()
    seen: list[RequestAdded] = []
    engine.bus.subscribe(seen.append, RequestAdded)
    engine.add_request([1, 2], SamplingParams(max_tokens=2), request_id="a")
    with pytest.raises(ValueError, match="request_id 'a' is already in use"):
        engine.add_request([3], request_id="a")
    assert len(seen) == 1
    assert run_to_end(engine)["a"].prompt_token_ids == [1, 2]


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"max_tokens": 0}, "max_tokens"),
        ({"min_tokens": -1}, "min_tokens"),
        ({"max_tokens": 2, "min_tokens": 3}, "min_tokens"),
        ({"temperature": -0.5}, "temperature"),
        ({"top_p": 0.0}, "top_p"),
        ({"top_p": 1.5}, "top_p"),
        ({"top_k": -2}, "top_k"),
        ({"seed": "x"}, "seed"),
        ({"stop_token_ids": [-3]}, "stop_token_ids"),
        ({"stop": [""]}, "stop"),
    ],
)
def test_bad_sampling_params_name_the_field(kwargs: dict[str, object], field: str) -> None:
    with pytest.raises(ValueError, match=field):
        SamplingParams(**kwargs)  # type: ignore[arg-type]


def test_sampling_params_of_the_wrong_type_are_refused() -> None:
    engine = make_engine()
    with pytest.raises(TypeError, match="sampling_params must be a SamplingParams"):
        engine.add_request([1], {"max_tokens": 3})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_num_batched_tokens": 8, "max_num_seqs": 16}, r"max_num_batched_tokens \(8\)"),
        (
            {"enable_chunked_prefill": False, "max_num_batched_tokens": 128, "max_model_len": 256},
            "enable_chunked_prefill=False",
        ),
        ({"num_gpu_blocks": 4, "block_size": 16, "max_model_len": 64}, r"num_gpu_blocks \(4\)"),
        ({"block_size": 0}, "block_size must be a positive integer, got 0"),
        ({"long_prefill_token_threshold": -1}, "long_prefill_token_threshold"),
        ({"enable_prefix_caching": "yes"}, "enable_prefix_caching must be a bool"),
    ],
)
def test_configurations_vllm_rejects(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        LLMEngine("dummy", **kwargs)  # type: ignore[arg-type]


def test_unknown_model_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown model 'gpt-7'"):
        LLMEngine("gpt-7")


class _WrongShape:
    """Drops the last scheduled request from its output once."""

    def __init__(self) -> None:
        self.broken_once = False

    def execute_model(self, scheduler_output):  # type: ignore[no-untyped-def]
        reqs = scheduler_output.scheduled_reqs
        ids = [r.request_id for r in reqs]
        tokens = [[7] if r.num_computed_tokens >= r.num_tokens else [] for r in reqs]
        if not self.broken_once and len(ids) > 1:
            self.broken_once = True
            return ModelRunnerOutput(ids[:-1], tokens[:-1])
        return ModelRunnerOutput(ids, tokens)


def test_wrong_runner_output_is_refused_and_the_engine_keeps_serving() -> None:
    engine = make_engine(model=_WrongShape())
    engine.add_request([1] * 5, SamplingParams(max_tokens=3), request_id="a")
    engine.add_request([2] * 5, SamplingParams(max_tokens=3), request_id="b")
    with pytest.raises(ValueError, match="do not match the scheduled requests"):
        engine.step()
    # The refused step was undone: both requests wait again, having computed nothing.
    assert not engine.scheduler.running
    assert [(r.request_id, r.num_computed_tokens) for r in engine.scheduler.waiting] == [
        ("a", 0),
        ("b", 0),
    ]
    final = run_to_end(engine)
    assert {k: len(v.outputs[0].token_ids) for k, v in final.items()} == {"a": 3, "b": 3}
    assert_no_leak(engine)


@pytest.mark.parametrize("tokens", [[[]], [[7, 7]], [[300]], [["x"]]])
def test_runner_token_shape_and_vocabulary_are_checked(tokens: list[list[object]]) -> None:
    class Runner:
        def execute_model(self, so):  # type: ignore[no-untyped-def]
            return ModelRunnerOutput([r.request_id for r in so.scheduled_reqs], tokens)

    engine = make_engine(model=Runner())
    engine.add_request([1, 2], request_id="r")
    with pytest.raises(ValueError, match="request 'r' must get exactly one token id"):
        engine.step()


def test_model_without_execute_model_is_refused() -> None:
    with pytest.raises(ValueError, match="execute_model"):
        LLMEngine(object())  # type: ignore[arg-type]
