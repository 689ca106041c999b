"""The Dockerfile's configuration, read as text: its TUSEDGE_* environment must build valid Settings that serve
on 0.0.0.0 with data in the volume. tests/e2e/test_image.py builds and runs the image for real."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

from tusedge.config import Settings

DOCKERFILE = Path(__file__).resolve().parent.parent / "Dockerfile"


def dockerfile_env() -> dict[str, str]:
    text = DOCKERFILE.read_text().replace("\\\n", " ")
    env: dict[str, str] = {}
    for line in text.splitlines():
        if line.startswith("ENV "):
            for pair in shlex.split(line[4:]):
                key, _, value = pair.partition("=")
                env[key] = value
    return env


def test_dockerfile_environment_serves_on_all_interfaces_with_data_volume() -> None:
    env = {k: v for k, v in dockerfile_env().items() if k.startswith("TUSEDGE_")}
    settings = Settings.from_env(env)
    assert settings.host == "0.0.0.0"
    assert settings.port == 1080
    assert str(settings.data_dir) == "/data"
    assert 'VOLUME ["/data"]' in DOCKERFILE.read_text()


def test_dockerfile_entrypoint_is_the_console_script() -> None:
    match = re.search(r"^ENTRYPOINT (.+)$", DOCKERFILE.read_text(), re.MULTILINE)
    assert match is not None
    assert json.loads(match.group(1)) == ["tusedge", "serve"]
    assert 'tusedge = "tusedge.cli:main"' in (DOCKERFILE.parent / "pyproject.toml").read_text()


def test_the_image_can_share_state_in_postgresql() -> None:
    """Several nodes from one image (docs/multi-node.md) need the [postgres] extra in it (tests/e2e/test_image.py
    imports asyncpg in the built image)."""
    assert 'p["optional-dependencies"]["postgres"]' in DOCKERFILE.read_text()


def test_the_base_image_is_a_build_argument_defaulting_to_the_public_python_image() -> None:
    text = DOCKERFILE.read_text()
    assert "ARG BASE_IMAGE=docker.io/library/python:3.11-slim" in text
    assert text.count("FROM ${BASE_IMAGE}") == 2
