"""The operator documentation keeps up with the code."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

from tusedge.config import Settings

DOCS = Path(__file__).resolve().parent.parent / "docs"


def test_every_setting_is_documented_in_configuration_md() -> None:
    text = (DOCS / "configuration.md").read_text()
    missing = [f.name for f in fields(Settings) if f"`--{f.name.replace('_', '-')}`" not in text]
    assert not missing, f"docs/configuration.md lacks: {missing}"
