"""Stop rules in vLLM's order: min_tokens, EOS, stop token ids, length."""

from __future__ import annotations

from helpers.engine import assert_no_leak
from helpers.engine import make_engine
from helpers.engine import run_to_end
from minivllm import DummyModelRunner
from minivllm import Request
from minivllm import SamplingParams

EOS = 257


def scripted(tokens: list[int]) -> DummyModelRunner:
    """A runner that emits ``tokens[k]`` as output token k."""
    return DummyModelRunner(sample_fn=lambda r: tokens[min(r.num_output_tokens, len(tokens) - 1)])


def generate(tokens: list[int], params: SamplingParams) -> tuple[list[int], str | None, object]:
    engine = make_engine(model=scripted(tokens))
    engine.add_request([1, 2, 3], params, request_id="r")
    out = run_to_end(engine)["r"]
    assert_no_leak(engine)
    c = out.outputs[0]
    return c.token_ids, c.finish_reason, c.stop_reason


def test_eos_stops_with_reason_stop() -> None:
    assert generate([5, 6, EOS, 8], SamplingParams(max_tokens=10)) == ([5, 6, EOS], "stop", None)


def test_ignore_eos_runs_to_max_tokens() -> None:
    tokens, reason, _ = generate([5, EOS, EOS, EOS], SamplingParams(max_tokens=4, ignore_eos=True))
    assert tokens == [5, EOS, EOS, EOS] and reason == "length"


def test_stop_token_id_sets_stop_reason() -> None:
    assert generate([5, 9, 8], SamplingParams(max_tokens=10, stop_token_ids=[9])) == (
        [5, 9],
        "stop",
        9,
    )


def test_min_tokens_suppresses_eos_and_stop_ids_until_reached() -> None:
    params = SamplingParams(max_tokens=10, min_tokens=3, stop_token_ids=[9])
    assert generate([EOS, 9, 5, 9], params) == ([EOS, 9, 5, 9], "stop", 9)
    assert generate([EOS, 9, EOS, 5], SamplingParams(max_tokens=10, min_tokens=3)) == (
        [EOS, 9, EOS],
        "stop",
        None,
    )


def test_eos_is_checked_before_stop_ids_and_length() -> None:
    params = SamplingParams(max_tokens=1, stop_token_ids=[EOS])
    assert generate([EOS], params) == ([EOS], "stop", None)


def test_max_tokens_caps_with_reason_length() -> None:
    assert generate([5], SamplingParams(max_tokens=3)) == ([5, 5, 5], "length", None)


def test_stop_string_cuts_text_and_finishes() -> None:
    text = [ord(c) for c in "hello world"]
    engine = make_engine(model=scripted(text))
    engine.add_request("x", SamplingParams(max_tokens=20, stop=["o w"]), request_id="r")
    out = run_to_end(engine)["r"]
    assert out.finish_reason == "stop"
    assert out.outputs[0].stop_reason == "o w"
    assert out.outputs[0].text == "hell"
    assert_no_leak(engine)


def test_sample_fn_sees_the_live_request() -> None:
    seen: list[int] = []

    def sample(r: Request) -> int:
        seen.append(r.num_output_tokens)
        return 5

    engine = make_engine(model=DummyModelRunner(sample_fn=sample))
    engine.add_request([1, 2], SamplingParams(max_tokens=3))
    run_to_end(engine)
    assert seen == [0, 1, 2]


def test_stop_strings_wait_for_min_tokens_and_match_only_new_text() -> None:
    # vLLM's detokenizer checks stop strings only once more than min_tokens tokens are
    # out, and only in the text the newest token added.
    engine = make_engine(model=scripted([ord(c) for c in "abcabcabc"]))
    engine.add_request("x", SamplingParams(max_tokens=20, min_tokens=5, stop=["b"]), request_id="r")
    out = run_to_end(engine)["r"]
    assert out.finish_reason == "stop" and out.outputs[0].stop_reason == "b"
    assert out.outputs[0].token_ids == [ord(c) for c in "abcabcab"]
    assert out.outputs[0].text == "abcabca"
    assert_no_leak(engine)
