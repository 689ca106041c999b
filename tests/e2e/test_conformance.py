"""The conformance suite (``python -m conformance``) against a real tusedge server: one test per SPEC-CHECKLIST rule.

The suite runs once per module (a server of its own, started here because ``tusedge_server`` is function-scoped)
and each test reports one rule, failing with the check's reason.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from server_process import ServerProcess

from conformance.runner import Result, Status, rule_ids, run

# A limit, so that creation.max-size-413 has a Tus-Max-Size to test.
MAIN_ARGS = ["--max-size-bytes", str(10**9)]
# exp.gone waits for a test upload to expire, so the expiration rules run against a second server whose uploads
# expire within seconds; on the main server such an expiry would cut short the checks that take a while.
EXPIRY_ARGS = ["--expiry-s", "2", "--reaper-interval-s", "0.5"]
# Extensions tusedge does not offer: their rules must SKIP ("not advertised"), or PASS once they are offered.
NOT_OFFERED = {"sum.trailer"}


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Result]]:
    main = ServerProcess(tmp_path_factory.mktemp("conformance"), MAIN_ARGS)
    expiring = ServerProcess(tmp_path_factory.mktemp("conformance-expiry"), EXPIRY_ARGS)
    try:
        main.start()
        expiring.start()
        found = {r.rule: r for r in run(main.url, ours=True).results if not r.rule.startswith("exp.")}
        found.update({r.rule: r for r in run(expiring.url, only=["exp"], ours=True).results})
        yield found
    finally:
        main.stop()
        expiring.stop()


@pytest.mark.parametrize("rule", rule_ids())
def test_rule(rule: str, results: dict[str, Result]) -> None:
    result = results[rule]
    if rule in NOT_OFFERED and result.status is Status.SKIP:
        pytest.skip(result.reason)
    assert result.status is Status.PASS, f"{result.status.value} {rule} — {result.reason}"
