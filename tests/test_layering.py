"""Dependency direction (STYLE section 6): ``protocol`` imports only ``errors``. Checked in a fresh interpreter
that imports every module of tusedge.protocol and reports what ended up in ``sys.modules``."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

_CHILD = """
import importlib, json, pkgutil, sys
import tusedge.protocol
names = [f"tusedge.protocol.{m.name}" for m in pkgutil.iter_modules(tusedge.protocol.__path__)]
for name in names:
    importlib.import_module(name)
print(json.dumps({"protocol": names, "loaded": sorted(sys.modules)}))
"""


@pytest.fixture(scope="module")
def loaded() -> tuple[list[str], set[str]]:
    proc = subprocess.run([sys.executable, "-c", _CHILD], capture_output=True, text=True, timeout=60, check=True)
    result = json.loads(proc.stdout)
    return result["protocol"], set(result["loaded"])


def test_every_protocol_module_was_imported(loaded: tuple[list[str], set[str]]) -> None:
    protocol, modules = loaded
    expected = {"constants", "headers", "metadata", "requests", "upload", "concat"}
    assert {name.rsplit(".", 1)[1] for name in protocol} >= expected
    assert set(protocol) <= modules


@pytest.mark.parametrize(
    "forbidden",
    ["starlette", "sqlalchemy", "anyio", "asyncio", "hypercorn", "aioquic", "httpx", "aiosqlite", "uvloop"],
)
def test_protocol_imports_no_io_framework(loaded: tuple[list[str], set[str]], forbidden: str) -> None:
    """STYLE: "protocol/ no I/O: no starlette, asyncio, sqlalchemy or os"."""
    _, modules = loaded
    assert not {name for name in modules if name == forbidden or name.startswith(forbidden + ".")}


def test_protocol_imports_only_errors_of_ours(loaded: tuple[list[str], set[str]]) -> None:
    """STYLE: "protocol imports only errors" (not storage, state, locking, server, client, checksum)."""
    _, modules = loaded
    ours = {name for name in modules if name == "tusedge" or name.startswith("tusedge.")}
    allowed = {"tusedge", "tusedge.errors", "tusedge.protocol"}
    assert {name for name in ours if name not in allowed and not name.startswith("tusedge.protocol.")} == set()
