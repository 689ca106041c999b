"""The operator documentation keeps up with the code."""

from __future__ import annotations

import argparse
from dataclasses import fields
from pathlib import Path

from tusedge.cli import build_parser
from tusedge.config import Settings

DOCS = Path(__file__).resolve().parent.parent / "docs"


def test_every_setting_is_documented_in_configuration_md() -> None:
    text = (DOCS / "configuration.md").read_text()
    missing = [f.name for f in fields(Settings) if f"`--{f.name.replace('_', '-')}`" not in text]
    assert not missing, f"docs/configuration.md lacks: {missing}"


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    (action,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(action.choices)


def test_every_flag_of_the_operator_commands_is_documented_in_configuration_md() -> None:
    """``tusedge doctor`` and ``tusedge uploads list|show|rm|gc``: their own flags (the server's settings they
    also take are checked above) each have a row in configuration.md."""
    text = (DOCS / "configuration.md").read_text()
    settings = {"--" + f.name.replace("_", "-") for f in fields(Settings)}
    settings |= {"--no-" + flag[2:] for flag in settings}
    commands = _subcommands(build_parser())
    parsers = {"doctor": commands["doctor"]}
    parsers |= {f"uploads {name}": sub for name, sub in _subcommands(commands["uploads"]).items()}
    flags = {
        flag
        for parser in parsers.values()
        for action in parser._actions
        for flag in action.option_strings
        if flag.startswith("--") and flag not in settings and flag != "--help"
    }
    assert {"--rate-mbit", "--rtt-ms", "--pid", "--json", "--state", "--older-than", "--limit"} <= flags
    missing = sorted(flag for flag in flags if f"`{flag}`" not in text)
    assert not missing, f"docs/configuration.md lacks: {missing}"
