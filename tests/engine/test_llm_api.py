"""The offline LLM API, the CLI, the tokenizer and the output kinds."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import pytest

from helpers.engine import make_engine
from lifecycle_trace.cli import build_parser as trace_parser
from minivllm import LLM
from minivllm import ByteTokenizer
from minivllm import RequestOutput
from minivllm import RequestOutputKind
from minivllm import SamplingParams
from minivllm.cli import build_parser
from minivllm.cli import main


def test_generate_returns_outputs_in_prompt_order() -> None:
    llm = LLM(max_num_seqs=2)
    prompts = ["ccc", "a", "bbbb", "dd"]
    outs = llm.generate(prompts, SamplingParams(max_tokens=5), use_tqdm=False)
    assert [o.prompt for o in outs] == prompts
    assert [o.outputs[0].text for o in outs] == ["ccccc", "aaaaa", "bbbbb", "ddddd"]
    assert all(o.finished and o.finish_reason == "length" for o in outs)


def test_generate_takes_one_params_per_prompt() -> None:
    outs = LLM().generate(["x", "y"], [SamplingParams(max_tokens=1), SamplingParams(max_tokens=3)])
    assert [len(o.outputs[0].token_ids) for o in outs] == [1, 3]
    with pytest.raises(ValueError, match="2 entries for 3 prompts"):
        LLM().generate(["x", "y", "z"], [SamplingParams(), SamplingParams()])


def test_output_kinds() -> None:
    engine = make_engine()
    engine.add_request([1], SamplingParams(max_tokens=3), request_id="cum")
    engine.add_request(
        [1], SamplingParams(max_tokens=3, output_kind=RequestOutputKind.DELTA), request_id="delta"
    )
    engine.add_request(
        [1],
        SamplingParams(max_tokens=3, output_kind=RequestOutputKind.FINAL_ONLY),
        request_id="fin",
    )
    steps = [{o.request_id: o.outputs[0].token_ids for o in engine.step()} for _ in range(3)]
    assert [s["cum"] for s in steps] == [[7], [7, 7], [7, 7, 7]]
    assert [s["delta"] for s in steps] == [[7], [7], [7]]
    assert ["fin" in s for s in steps] == [False, False, True]
    assert steps[2]["fin"] == [7, 7, 7]


def test_byte_tokenizer_round_trip_and_specials() -> None:
    tok = ByteTokenizer()
    ids = tok.encode("héllo")
    assert ids == list("héllo".encode())
    assert tok.decode([*ids, tok.eos_token_id]) == "héllo"
    assert tok.eos_token_id > 255 and tok.bos_token_id > 255


def test_cli_generate(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["generate", "hi", "--max-tokens", "4"]) == 0
    assert "'hi' -> 'hihi' (4 tokens, finish_reason=length)" in capsys.readouterr().out


def _subcommand(parser: argparse.ArgumentParser, name: str) -> argparse.ArgumentParser:
    [sub] = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return sub.choices[name]  # type: ignore[no-any-return]


def _engine_and_sampling(parser: argparse.ArgumentParser) -> list[tuple[object, ...]]:
    return [
        (group.title, action.option_strings, action.dest, action.default)
        for group in parser._action_groups
        if group.title in ("engine", "sampling")
        for action in group._group_actions
    ]


def test_cli_generate_takes_the_engine_and_sampling_options_of_lifecycle_trace(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    generate = _subcommand(build_parser(), "generate")
    run = _subcommand(trace_parser(), "run")
    assert _engine_and_sampling(generate) == _engine_and_sampling(run) != []
    # --seed is the engine's seed, as in lifecycle-trace; --sampling-seed the params'.
    made: list[dict[str, object]] = []
    params: list[object] = []

    class Recorded(LLM):
        def __init__(self, *args: object, **kwargs: object) -> None:
            made.append(kwargs)
            super().__init__(*args, **kwargs)  # type: ignore[arg-type]

        def generate(self, prompts: object, sampling_params: object = None) -> list[RequestOutput]:
            params.append(sampling_params)
            return super().generate(prompts, sampling_params)  # type: ignore[arg-type]

    monkeypatch.setattr("minivllm.cli.LLM", Recorded)
    argv = ["generate", "hi", "--seed", "3", "--sampling-seed", "5", "--no-chunked-prefill"]
    assert main([*argv, "--max-tokens", "2"]) == 0
    [kwargs] = made
    assert (kwargs["seed"], kwargs["enable_chunked_prefill"]) == (3, False)
    [sampling] = params
    assert isinstance(sampling, SamplingParams) and sampling.seed == 5


def test_cli_reports_bad_input(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["generate", "hi", "--max-tokens", "0"]) == 2
    assert "max_tokens must be an integer of at least 1 that fits in 64 bits, got 0" in (
        capsys.readouterr().err
    )


def test_generate_with_async_scheduling_and_priorities() -> None:
    llm = LLM(max_num_seqs=1, async_scheduling=True, policy="priority")
    prompts = ["first", "second", "third"]
    outs = llm.generate(prompts, SamplingParams(max_tokens=3), use_tqdm=False, priority=[2, 0, 1])
    assert [o.outputs[0].text for o in outs] == ["fir", "sec", "thi"]
    with pytest.raises(ValueError, match="priority has 1 entries for 3 prompts"):
        llm.generate(prompts, priority=[0])


def test_cli_replays_a_reference_workload(capsys: pytest.CaptureFixture[str]) -> None:
    data = Path(__file__).parent.parent / "data" / "vllm_examples_v2"
    assert main(["replay", str(data / "h_async_priority.json")]) == 0
    lines = capsys.readouterr().out.splitlines()
    want = (data / "h_async_priority.expected.jsonl").read_text().splitlines()
    assert [json.loads(line) for line in lines] == [json.loads(line) for line in want]


def test_cli_replay_reports_a_bad_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["replay", str(tmp_path / "missing.json")]) == 3
    assert "cannot read" in capsys.readouterr().err
    bad = tmp_path / "bad.json"
    bad.write_text('{"config": {}, "requests": []}')
    assert main(["replay", str(bad)]) == 3
    assert "bad.json is not a workload" in capsys.readouterr().err


def test_python_dash_m() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "minivllm", "generate", "ab", "--max-tokens", "2"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "'ab' -> 'ab'" in done.stdout
