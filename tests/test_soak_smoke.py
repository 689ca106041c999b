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


def test_soak_traces_the_server_memory_when_asked(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--trace-memory: the server runs under tracemalloc and the report gives its traced memory over time."""
    import os

    os.environ["SOAK_TRACE_INTERVAL_S"] = "1"  # inherited by the server process
    try:
        assert (
            main(["--clients", "2", "--duration", "4", "--dir", str(tmp_path), "--trace-memory", str(tmp_path / "t")])
            == 0
        )
    finally:
        del os.environ["SOAK_TRACE_INTERVAL_S"]
    out = capsys.readouterr().out
    assert "traced_mib=" in out and "tracemalloc" in out, out
    assert list((tmp_path / "t").glob("snap-*.pickle"))
