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


def _layout_sections() -> dict[str, str]:
    """README's Layout block: for each folder label (``tusedge/server/``, ``  hypercorn_fixes/``), its line
    and the more deeply indented lines under it."""
    readme = (DOCS.parent / "README.md").read_text()
    block = readme.split("## Layout", 1)[1].split("```", 2)[1]
    lines = block.splitlines()
    sections: dict[str, str] = {}
    for i, line in enumerate(lines):
        label = line.strip().split(" ", 1)[0] if line.strip() else ""
        if not label.endswith("/"):
            continue
        indent = len(line) - len(line.lstrip())
        below = [line]
        for following in lines[i + 1 :]:
            if following.strip() and len(following) - len(following.lstrip()) <= indent:
                break
            below.append(following)
        sections[label] = "\n".join(below)
    return sections


def test_readme_layout_names_every_module() -> None:
    """The README's Layout lists every module of the package under its folder (issue 12)."""
    sections = _layout_sections()
    package = DOCS.parent / "tusedge"
    missing = []
    for path in sorted(package.rglob("*.py")):
        if path.name == "__init__.py" or "node_modules" in path.parts:
            continue
        folder = path.parent.relative_to(package.parent).as_posix() + "/"
        section = sections.get(folder) or sections.get(path.parent.name + "/", "")
        if path.name not in section:
            missing.append(path.relative_to(package.parent).as_posix())
    assert missing == [], f"README.md's Layout does not name: {missing}"
