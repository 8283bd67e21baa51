"""LLM.generate's tqdm progress bar: on a terminal, never on a stream that carries JSON lines."""

from __future__ import annotations

import functools
import io
import json
import sys
from typing import Any

import pytest
from tqdm import tqdm

from minivllm import LLM
from minivllm import SamplingParams
from minivllm.events import Event


class Terminal(io.StringIO):
    """A text stream that says it is a terminal."""

    def isatty(self) -> bool:
        return True


class JsonLinesTo:
    """An observer writing one JSON line per event to ``stream``, and saying so."""

    def __init__(self, stream: Any) -> None:
        self.stream = stream

    def __call__(self, event: Event) -> None:
        self.stream.write(json.dumps({"event": event.tag, "seq": event.seq}) + "\n")

    def output_streams(self) -> list[Any]:
        return [self.stream]


PROMPTS = [str(i) for i in range(3)]
PARAMS = SamplingParams(max_tokens=2)


def test_the_bar_counts_prompts_on_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    LLM().generate(PROMPTS, PARAMS)
    assert "Processed prompts" in terminal.getvalue()
    assert "3/3" in terminal.getvalue()


def test_no_bar_when_stderr_is_not_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    piped = io.StringIO()
    monkeypatch.setattr(sys, "stderr", piped)
    LLM().generate(PROMPTS, PARAMS)
    assert piped.getvalue() == ""


def test_no_bar_on_a_terminal_that_carries_json_lines(monkeypatch: pytest.MonkeyPatch) -> None:
    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    LLM(observers=[JsonLinesTo(terminal)]).generate(PROMPTS, PARAMS)
    lines = terminal.getvalue().splitlines()
    assert lines and all(json.loads(line)["event"] for line in lines)


def test_use_tqdm_false_or_a_callable(monkeypatch: pytest.MonkeyPatch) -> None:
    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    LLM().generate(PROMPTS, PARAMS, use_tqdm=False)
    assert terminal.getvalue() == ""
    elsewhere = io.StringIO()
    LLM().generate(PROMPTS, PARAMS, use_tqdm=functools.partial(tqdm, file=elsewhere))
    assert "Processed prompts" in elsewhere.getvalue() and "3/3" in elsewhere.getvalue()
    assert terminal.getvalue() == ""
