"""``python -m conformance``: arguments, exit status, output format (against httpx mock servers)."""

from __future__ import annotations

import json

import httpx
import pytest

from conformance import __main__ as cli
from conformance import report
from conformance.runner import Report, Status, run


def test_list_prints_every_rule(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["--list"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 41
    assert out[0].startswith("core.resumable-everywhere")


@pytest.mark.parametrize("argv", [[], ["http://x/files/", "--only", "nosuch"], ["http://x/", "--header", "novalue"]])
def test_usage_errors_exit_2(argv: list[str]) -> None:
    with pytest.raises(SystemExit) as raised:
        cli.main(argv)
    assert raised.value.code == 2


def test_unreachable_server_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["http://127.0.0.1:1/files/", "--timeout", "2"]) == 2
    assert "OPTIONS http://127.0.0.1:1/files/ failed" in capsys.readouterr().err


def test_header_pair_splits_at_the_first_colon() -> None:
    assert cli.header_pair("Authorization: Bearer a:b") == ("Authorization", "Bearer a:b")


def _bare_report() -> Report:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.method == "OPTIONS":
            return httpx.Response(204, headers={"Tus-Version": "1.0.0"})
        return httpx.Response(404, headers={"Tus-Resumable": "1.0.0"})

    return run("http://tus.invalid/files/", only=["core.options", "creation"], transport=httpx.MockTransport(handler))


def test_lines_and_summary() -> None:
    outcome = _bare_report()
    assert [report.line(result) for result in outcome.results][1] == (
        "SKIP creation.201 — extension creation not advertised"
    )
    assert report.line(outcome.results[0]).startswith("PASS core.options — 204, Tus-Version 1.0.0")
    assert outcome.summary == "1 passed, 0 failed, 5 skipped"


def test_json_document() -> None:
    document = json.loads(report.to_json(_bare_report()))
    assert document["summary"] == {"passed": 1, "failed": 0, "skipped": 5}
    assert document["ok"] is True
    assert document["server"]["versions"] == ["1.0.0"]
    assert document["results"][0]["rule"] == "core.options"
    assert document["results"][0]["status"] == Status.PASS.value
