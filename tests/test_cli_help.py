"""Every command of both roles has help text that ends with an example."""

from __future__ import annotations

import argparse
from typing import Iterator, Tuple

import pytest

import local.cli.main
import remote.cli


def _commands(parser: argparse.ArgumentParser) -> Iterator[Tuple[str, argparse.ArgumentParser]]:
    yield parser.prog, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield name, sub


@pytest.mark.parametrize(
    "build", [remote.cli.build_parser, local.cli.main.build_parser], ids=["remote", "local"]
)
def test_cli_help_every_command_has_help_ending_with_an_example(build) -> None:
    for name, parser in _commands(build()):
        text = parser.format_help()
        assert parser.description, name
        assert "example:" in text, "{} --help has no example".format(name)
        assert "python -m " in text.rsplit("example:", 1)[1], name
