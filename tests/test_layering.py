"""Dependency direction (STYLE section 6, docs/architecture.md). ``protocol`` imports only ``errors``: checked
in a fresh interpreter that imports every module of tusedge.protocol and reports what ended up in
``sys.modules``. The whole graph (which part of tusedge may import which): checked from the source."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

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


# --- the whole graph, from the source (every import, also those inside functions) -------------------------
TUSEDGE = Path(__file__).parent.parent / "tusedge"

# Each part of tusedge (a top-level module or package) and the parts it may import. A part missing from the
# table fails the test: where a new module sits in the graph is a decision, made here.
ALLOWED: dict[str, set[str]] = {
    "__init__": set(),
    "errors": set(),
    "ids": set(),
    "tokenbucket": set(),
    "tls": set(),
    "config": {"events"},
    "events": set(),
    "threads": set(),
    "checksum": {"errors"},  # not storage: the Hasher protocol is checksum's own
    "signing": {"errors"},
    "protocol": {"errors"},
    "oserrors": {"errors", "threads"},
    "storage": {"errors", "checksum", "threads", "oserrors"},
    "state": {"errors", "protocol", "threads"},
    "locking": {"errors", "threads", "oserrors"},
    # the client: nothing of server, state, storage, locking or admin
    "client": {"errors", "protocol", "checksum", "tokenbucket", "config"},
    "http3": {"client"},  # the documented import path of tusedge.client.http3
    "server": {
        "__init__",
        "errors",
        "ids",
        "checksum",
        "signing",
        "tokenbucket",
        "config",
        "protocol",
        "storage",
        "state",
        "locking",
        "threads",
        "events",
    },
    "admin": {"errors", "config", "protocol", "server", "state", "storage", "locking"},
    "cli": {"__init__", "config", "admin", "client", "server", "signing", "tls"},
    "__main__": {"cli"},
}


def _part(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _submodule(name: str) -> str:
    """``from tusedge import <name>``: the module tusedge.<name>, or a name of tusedge's own __init__."""
    exists = (TUSEDGE / f"{name}.py").is_file() or (TUSEDGE / name).is_dir()
    return f"tusedge.{name}" if exists else "tusedge"


def import_graph() -> dict[str, set[tuple[str, str]]]:
    """For every module file of tusedge: the (part, module) pairs of the tusedge modules it imports."""
    graph: dict[str, set[tuple[str, str]]] = {}
    for path in sorted(TUSEDGE.rglob("*.py")):
        if "node_modules" in path.parts:
            continue
        name = ".".join(("tusedge", *path.relative_to(TUSEDGE).with_suffix("").parts)).removesuffix(".__init__")
        targets: set[tuple[str, str]] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found = [node.module] if node.module != "tusedge" else [_submodule(a.name) for a in node.names]
            elif isinstance(node, ast.Import):
                found = [alias.name for alias in node.names]
            else:
                continue
            targets |= {(_part(m), m) for m in found if m == "tusedge" or m.startswith("tusedge.")}
        graph[name] = targets
    return graph


def test_every_part_of_tusedge_has_its_place_in_the_graph() -> None:
    assert {_part(module) for module in import_graph()} - set(ALLOWED) == set()


def test_imports_follow_the_dependency_graph() -> None:
    """client imports nothing of server/state/storage/locking; storage, state and locking nothing of server;
    locking nothing of storage; protocol only errors; the shared modules only what ALLOWED says."""
    wrong = sorted(
        f"{module} imports {target}"
        for module, targets in import_graph().items()
        for part, target in targets
        if part != _part(module) and part not in ALLOWED[_part(module)]
    )
    assert wrong == []
