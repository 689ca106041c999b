"""The table of Hypercorn fixes holds: it matches the installed Hypercorn and aioquic, a mismatch stops the
server before it serves, and every fix has a test that fails when that fix alone is off."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
from server_process import ROOT

from tusedge.server.hypercorn_fixes import PATCHES, Patch
from tusedge.server.hypercorn_fixes.table import FixesMismatch, problems, verify

DOCS = ROOT / "docs" / "hypercorn-fixes.md"
# Fixes whose only effect is server CPU, with no behaviour a test can see (none since the batched datagram
# loop replaced quic-timer-rearm and quic-timer-fired).
WITHOUT_A_TEST: set[str] = set()


def test_the_installed_hypercorn_and_aioquic_are_what_every_fix_was_written_for() -> None:
    assert problems(PATCHES) == []


def test_a_changed_upstream_function_is_named_and_refused() -> None:
    first = PATCHES[0]
    stale = replace(first, fingerprint="0" * 16)
    with pytest.raises(FixesMismatch, match=f"{first.name}: {first.target_name} changed upstream"):
        verify([stale])


def test_an_other_hypercorn_version_is_refused() -> None:
    found = problems([], versions={"hypercorn": "0.17", "aioquic": "1.7"})
    assert len(found) == 1 and found[0].startswith("hypercorn 0.18.0 is installed; the fixes were written for 0.17")


def test_a_function_that_no_longer_exists_is_refused() -> None:
    class Target:
        pass

    gone = Patch(
        name="gone", target=Target, attribute="method", build=lambda original: original, kind="wrap",
        fingerprint="0" * 16, reason="", upstream="", test="",
    )  # fmt: skip
    assert problems([gone], versions={}) == [f"gone: {gone.target_name} no longer exists"]


@pytest.mark.e2e  # starts a server process
def test_a_server_asked_to_turn_off_an_unknown_fix_does_not_start(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "tusedge", "serve", "--port", "0", "--data-dir", str(tmp_path / "data"),
         "--hypercorn-fixes-off", "no-such-fix"],
        capture_output=True, text=True, timeout=60, cwd=ROOT,
    )  # fmt: skip
    assert result.returncode == 2
    assert "no-such-fix: no such fix" in result.stderr


def test_every_fix_is_in_the_docs_with_its_test() -> None:
    text = DOCS.read_text()
    missing = [patch.name for patch in PATCHES if f"`{patch.name}`" not in text]
    assert not missing, f"docs/hypercorn-fixes.md lacks {missing}"
    assert {patch.name for patch in PATCHES if not patch.test} == WITHOUT_A_TEST


@pytest.mark.slow
@pytest.mark.e2e  # runs a test of tests/e2e in a pytest process
@pytest.mark.parametrize("patch", [p for p in PATCHES if p.test], ids=lambda patch: patch.name)
def test_each_fix_has_a_test_that_fails_without_it(patch: Patch) -> None:
    """Its test, run with just this fix off (the servers it starts get ``--hypercorn-fixes-off``), fails;
    the normal run of the suite shows it passes with the fix."""
    path, _, name = patch.test.partition("::")
    assert (ROOT / path).is_file() and f"def {name}(" in (ROOT / path).read_text(), patch.test
    env = {**os.environ, "TUSEDGE_HYPERCORN_FIXES_OFF": patch.name}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-x", patch.test],
        capture_output=True, text=True, timeout=600, cwd=ROOT, env=env,
    )  # fmt: skip
    assert result.returncode == 1, f"{patch.test} did not fail with {patch.name} off:\n{result.stdout[-3000:]}"
    assert "1 failed" in result.stdout, result.stdout[-3000:]


def test_pyproject_pins_the_versions_the_fixes_check() -> None:
    """The dependency pins and the start-up check agree: Hypercorn exactly, aioquic to the minor version
    (``tusedge.client.http3`` and quic_loop.py read aioquic 1.7's private fields too)."""
    import tomllib

    from tusedge.server.hypercorn_fixes.table import REQUIRED_VERSIONS

    dependencies = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    pins = {spec.split("[")[0].split("=")[0].split(">")[0].split("<")[0]: spec for spec in dependencies}
    assert pins["hypercorn"] == f"hypercorn[h3]=={REQUIRED_VERSIONS['hypercorn']}"
    major, minor = REQUIRED_VERSIONS["aioquic"].split(".")
    assert pins["aioquic"] == f"aioquic>={major}.{minor},<{major}.{int(minor) + 1}"
