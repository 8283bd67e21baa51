"""Stop strings with multi-byte characters match, on the byte that completes the character.

The byte tokenizer gives a 2-, 3- or 4-byte UTF-8 character one token per
byte; the engine searches the text an incremental detokenizer shows (an
incomplete character held back), so a stop string ending in ``é`` or an
emoji finishes the request instead of running it to ``max_tokens``.
"""

from __future__ import annotations

import pytest

from minivllm import DummyModelRunner
from minivllm import LLMEngine
from minivllm import SamplingParams
from minivllm.model_executor.runner import output_index
from minivllm.request import Request


def _speaker(text: str) -> DummyModelRunner:
    """A runner whose output is ``text``'s bytes, then spaces."""
    data = text.encode("utf-8")

    def sample(request: Request) -> int:
        i = output_index(request)
        return data[i] if i < len(data) else 32

    return DummyModelRunner(sample_fn=sample)


@pytest.mark.parametrize(
    ("text", "stop", "kept"),
    [
        ("café au lait", "é", "caf"),
        ("naïve", "ïv", "na"),
        ("price: 5€ now", "€", "price: 5"),
        ("go 🚀 now", "🚀", "go "),
        ("a 🚀🚀 b", "🚀🚀", "a "),
        ("über alles", "ü", ""),
        ("日本語のテキスト", "語", "日本"),
        ("ends in é", "in é", "ends "),
    ],
)
def test_a_stop_string_with_multi_byte_characters_matches(text: str, stop: str, kept: str) -> None:
    engine = LLMEngine(_speaker(text), max_model_len=128)
    engine.add_request("x", SamplingParams(max_tokens=60, stop=[stop]), request_id="r")
    final = None
    while engine.has_unfinished_requests():
        for out in engine.step():
            if out.finished:
                final = out
    assert final is not None
    completion = final.outputs[0]
    assert completion.finish_reason == "stop"
    assert completion.stop_reason == stop
    assert completion.text == kept
    # It stopped on the byte completing the stop string, not at max_tokens.
    assert len(completion.token_ids) == len((kept + stop).encode("utf-8"))


def test_a_multi_byte_stop_string_is_not_matched_on_half_a_character() -> None:
    # "é" is C3 A9 and "ã" is C3 A3: after the shared first byte nothing matches yet.
    engine = LLMEngine(_speaker("são é"), max_model_len=128)
    engine.add_request("x", SamplingParams(max_tokens=60, stop=["é"]), request_id="r")
    outputs = []
    while engine.has_unfinished_requests():
        outputs += [o for o in engine.step() if o.finished]
    (final,) = outputs
    assert final.outputs[0].text == "são "
