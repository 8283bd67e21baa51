"""Stop strings ending in a multi-byte character match on the byte that completes it."""

from __future__ import annotations

import pytest

from minivllm import DummyModelRunner
from minivllm import LLMEngine
from minivllm import SamplingParams


def _finish(stop: str, emitted: bytes) -> tuple[list[int], str, str | None, int | str | None]:
    def sample(request: object) -> int:
        position = len(request.output_token_ids)  # type: ignore[attr-defined]
        return emitted[position % len(emitted)]

    engine = LLMEngine(DummyModelRunner(sample_fn=sample), max_model_len=64)
    engine.add_request("hi", SamplingParams(max_tokens=8, stop=[stop]))
    while engine.has_unfinished_requests():
        for out in engine.step():
            if out.finished:
                c = out.outputs[0]
                return c.token_ids, c.text, c.finish_reason, c.stop_reason
    raise AssertionError("the request did not finish")


@pytest.mark.parametrize("stop", ["é", "xé", "€", "😀"])
def test_stop_string_ending_in_a_multibyte_character(stop: str) -> None:
    emitted = f"ab{stop}cd".encode()
    tokens, text, reason, stop_reason = _finish(stop, emitted)
    # It stops on the last byte of the stop string; the kept text ends before it.
    assert bytes(tokens) == f"ab{stop}".encode()
    assert text == "ab"
    assert (reason, stop_reason) == ("stop", stop)


def test_incomplete_character_is_not_new_text() -> None:
    # "é" is two bytes; the stop string "\\ufffd" must never match the half-decoded byte.
    tokens, _, reason, _ = _finish("\ufffd", "é".encode())
    assert reason == "length" and len(tokens) == 8
