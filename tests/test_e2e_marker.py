"""The ``e2e`` marker (tests/conftest.py) selects the tests that drive real processes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parent.parent


def collected(marker: str, *paths: str) -> set[str]:
    args = [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", "-m", marker, *paths]
    out = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, check=True, timeout=120).stdout
    return {line.split("::")[0] for line in out.splitlines() if "::" in line}


def test_e2e_marker_selects_the_subprocess_tests() -> None:
    """``-m "not e2e"`` is the fast loop: it keeps the in-process layer and unit tests that start no
    server, and drops tests/e2e and tests that take a server fixture."""
    paths = ("tests/e2e/test_core_edges.py", "tests/inprocess/test_wiring.py")
    e2e, fast = collected("e2e", *paths), collected("not e2e", *paths)
    assert "tests/e2e/test_core_edges.py" in e2e and "tests/e2e/test_core_edges.py" not in fast
    assert "tests/inprocess/test_wiring.py" in fast and "tests/inprocess/test_wiring.py" not in e2e


def test_e2e_marker_selects_the_tests_that_start_servers_outside_tests_e2e() -> None:
    """The benchmarks' smoke runs start tusedge (and peer) servers: e2e, not the fast loop."""
    paths = ("tests/test_benchmarks_smoke.py", "tests/test_soak_smoke.py", "tests/test_app_cpu_smoke.py")
    e2e, fast = collected("e2e", *paths), collected("not e2e", *paths)
    assert e2e == {"tests/test_benchmarks_smoke.py", "tests/test_soak_smoke.py"}
    assert fast == {"tests/test_app_cpu_smoke.py"}  # the app in process, no server
