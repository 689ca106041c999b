"""The benchmark harness works (tiny sizes, tusedge only): figures are produced for every workload."""

from __future__ import annotations

from pathlib import Path

from benchmarks.__main__ import main


def test_quick_benchmark_writes_every_section(tmp_path: Path) -> None:
    out = tmp_path / "benchmarks.md"
    assert main(["--quick", "--no-peers", "--small-count", "10", "--out", str(out), "--dir", str(tmp_path)]) == 0
    text = out.read_text()
    for heading in ("## Machine ceilings", "## Single upload", "## Many small uploads", "## Parallel partial uploads"):
        assert heading in text
    assert "| tusedge | one PATCH |" in text and "| 2 | 8 |" in text
    assert "## Constrained link" in text  # measured, or skipped with the reason where namespaces are missing
    assert "## Transports" in text and "| h3 | our client x1 | HTTP/3 built-in |" in text
