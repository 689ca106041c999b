"""The conformance suite (``python -m conformance``) against a real tusedge server: one test per SPEC-CHECKLIST rule.

The suite runs once per module (a server of its own, started here because ``tusedge_server`` is function-scoped)
and each test reports one rule, failing with the check's reason.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import pytest
from server_process import ROOT, ServerProcess

from conformance.runner import Result, Status, rule_ids, run

# A limit, so that creation.max-size-413 has a Tus-Max-Size to test.
MAIN_ARGS = ["--max-size-bytes", str(10**9)]
# exp.gone waits for a test upload to expire, so the expiration rules run against a second server whose uploads
# expire within seconds; on the main server such an expiry would cut short the checks that take a while.
EXPIRY_ARGS = ["--expiry-s", "2", "--reaper-interval-s", "0.5"]
# Extensions tusedge does not offer: their rules must SKIP ("not advertised"), or PASS once they are offered.
NOT_OFFERED = {"sum.trailer"}


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerProcess, ServerProcess]]:
    """The main server and the short-expiry one."""
    main = ServerProcess(tmp_path_factory.mktemp("conformance"), MAIN_ARGS)
    expiring = ServerProcess(tmp_path_factory.mktemp("conformance-expiry"), EXPIRY_ARGS)
    try:
        main.start()
        expiring.start()
        yield main, expiring
    finally:
        main.stop()
        expiring.stop()


@pytest.fixture(scope="module")
def results(servers: tuple[ServerProcess, ServerProcess]) -> dict[str, Result]:
    main, expiring = servers
    found = {r.rule: r for r in run(main.url, ours=True).results if not r.rule.startswith("exp.")}
    found.update({r.rule: r for r in run(expiring.url, only=["exp"], ours=True).results})
    return found


@pytest.mark.parametrize("rule", rule_ids())
def test_rule(rule: str, results: dict[str, Result]) -> None:
    result = results[rule]
    if rule in NOT_OFFERED:
        # Not offered, so the server must not advertise it and the suite must not run it (docs/checksums.md
        # says why checksum-trailer cannot work on ASGI).
        assert result.status is Status.SKIP and "not advertised" in result.reason, result
        return
    assert result.status is Status.PASS, f"{result.status.value} {rule} — {result.reason}"


def test_command_line_prints_one_line_per_rule_and_the_summary(servers: tuple[ServerProcess, ServerProcess]) -> None:
    main, _ = servers
    command = [sys.executable, "-m", "conformance", main.url, "--only", "core", "--only", "sum.trailer"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=ROOT)
    lines = done.stdout.splitlines()
    core = [rule for rule in rule_ids() if rule.startswith("core.")]
    assert [line.split()[:2] for line in lines[:-1]] == [["PASS", rule] for rule in core] + [["SKIP", "sum.trailer"]]
    assert lines[-1] == f"{len(core)} passed, 0 failed, 1 skipped"
    assert done.returncode == 0, done.stderr
