"""Both commands: --version, a help text and a default for every option, every command listed."""

from __future__ import annotations

import argparse
import importlib.metadata
from collections.abc import Iterator

import pytest

import lifecycle_trace.cli as trace_cli
import minivllm.cli as engine_cli

PROGRAMS = {"lifecycle-trace": trace_cli, "minivllm": engine_cli}


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _options(parser: argparse.ArgumentParser) -> Iterator[tuple[str, argparse.Action]]:
    for name, sub in _subcommands(parser).items():
        for action in sub._actions:
            if not isinstance(action, argparse._HelpAction):
                yield name, action


@pytest.mark.parametrize("program", sorted(PROGRAMS))
def test_version(program: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert PROGRAMS[program].main(["--version"]) == 0
    version = importlib.metadata.version("minivllm-lifecycle-trace")
    assert capsys.readouterr().out.strip() == f"{program} {version}"


@pytest.mark.parametrize("program", sorted(PROGRAMS))
def test_every_option_has_help_and_shows_its_default(program: str) -> None:
    parser = PROGRAMS[program].build_parser()
    for command, action in _options(parser):
        where = f"{program} {command} {'/'.join(action.option_strings) or action.dest}"
        assert action.help, f"{where} has no help text"
        if action.option_strings:
            formatter = parser._get_formatter()
            shown = formatter._expand_help(action) if action.help else ""  # type: ignore[attr-defined]
            assert "default" in shown, f"{where} does not show its default: {shown!r}"


@pytest.mark.parametrize("program", sorted(PROGRAMS))
def test_the_top_level_help_lists_every_command_with_its_help(program: str) -> None:
    parser = PROGRAMS[program].build_parser()
    text = " ".join(parser.format_help().split())
    subcommands = _subcommands(parser)
    assert subcommands
    for action in parser._subparsers._group_actions[0]._choices_actions:  # type: ignore[union-attr]
        assert action.help, action.dest
        assert f"{action.dest} {' '.join(action.help.split())}" in text
    if program == "lifecycle-trace":
        assert set(subcommands) == set(trace_cli._COMMANDS)
