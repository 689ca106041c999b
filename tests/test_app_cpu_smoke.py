"""benchmarks.app_cpu works (the app called as ASGI in-process): a figure for each request kind."""

from __future__ import annotations

import pytest

from benchmarks.app_cpu import main


def test_app_cpu_measures_options_head_and_uploads(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--uploads", "32", "--requests", "40"]) == 0
    out = capsys.readouterr().out
    for name in ("OPTIONS:", "HEAD:", "upload (POST + PATCH 64 KiB + HEAD):"):
        assert name in out and "ms CPU each" in out
