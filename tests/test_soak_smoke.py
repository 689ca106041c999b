"""The soak benchmark works (benchmarks/soak.py, not run in CI at full size): a few clients for a few seconds
against a real server, every operation kind done, no error, RSS and fds sampled."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.soak import main


def test_soak_smoke_runs_every_operation_without_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--clients", "4", "--duration", "4", "--dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "| 0 |" in out, out  # errors
    for kind in ("upload", "cut-off and resume", "download"):
        assert kind in out, out
    assert "server RSS MiB" in out and "open fds" in out
