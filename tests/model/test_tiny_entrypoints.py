"""``minivllm generate --model tiny`` and ``LLM(model="tiny")`` run the tiny transformer."""

from __future__ import annotations

import pytest

from minivllm import LLM
from minivllm import SamplingParams
from minivllm.cli import main
from minivllm.model_executor.tiny import TinyModelRunner
from minivllm.tokenizer import ByteTokenizer


def test_llm_generates_with_the_tiny_model() -> None:
    llm = LLM(model="tiny")
    assert isinstance(llm.llm_engine.model_runner, TinyModelRunner)
    params = SamplingParams(temperature=0, max_tokens=10, ignore_eos=True)
    first, second = llm.generate(["Hello", "Hello"], params)
    tokens = first.outputs[0].token_ids
    assert len(tokens) == 10
    assert first.outputs[0].text == ByteTokenizer().decode(tokens)
    assert second.outputs[0].token_ids == tokens


def test_cli_generate_with_the_tiny_model(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(
        [
            "generate",
            "--model",
            "tiny",
            "--temperature",
            "0",
            "--max-tokens",
            "5",
            "--ignore-eos",
            "Hello",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0
    expected = (
        LLM(model="tiny")
        .generate(["Hello"], SamplingParams(temperature=0, max_tokens=5, ignore_eos=True))[0]
        .outputs[0]
    )
    assert f"'Hello' -> {expected.text!r} (5 tokens, finish_reason=length)" in out


def test_cli_reports_a_bad_weights_path(capsys: pytest.CaptureFixture[str]) -> None:
    # A missing input file, as for every other input: exit status 3.
    assert main(["generate", "--model", "missing.npz", "Hello"]) == 3
    assert "missing.npz' does not exist" in capsys.readouterr().err
