"""The vLLM driver refuses what it cannot do, naming what it got."""

from __future__ import annotations

import pytest

from helpers.vllm import reference
from helpers.vllm import skip_without_vllm

skip_without_vllm()

from lifecycle_trace.vllm.driver import VllmEngine  # noqa: E402
from lifecycle_trace.vllm.driver import build_scheduler  # noqa: E402
from minivllm.sampling_params import SamplingParams  # noqa: E402


def test_build_scheduler_names_keyword_arguments_it_does_not_set() -> None:
    with pytest.raises(
        ValueError, match=r"engine_kwargs \[.model., .seed.\] are not scheduler or cache settings"
    ):
        build_scheduler({"seed": 1, "model": "tiny", "block_size": 4})
    with pytest.raises(ValueError, match="policy must be 'fcfs' or 'priority', got 'lifo'"):
        build_scheduler({"policy": "lifo"})


def test_requests_the_scheduler_alone_cannot_serve_are_refused() -> None:
    engine = VllmEngine(**reference("a").engine_kwargs)
    with pytest.raises(ValueError, match="stop strings are applied by vLLM's detokenizer"):
        engine.add_request([1, 2], SamplingParams(stop=("x",)))
    with pytest.raises(ValueError, match="prompt must have 1 to 4095 tokens"):
        engine.add_request([])
    engine.add_request([1, 2], request_id="x")
    with pytest.raises(ValueError, match="request_id 'x' is already in use"):
        engine.add_request([3], request_id="x")
    assert engine.add_request([4]) == "1"  # ids count the requests added
    engine.shutdown()
