"""The client benchmark works (tiny sizes, one repetition): a row per variant, each upload checked complete."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.client_parallel import main


def test_client_benchmark_prints_a_row_per_variant(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        main(["--size", "8MiB", "--memory-size", "12MiB", "--reps", "1", "--parallel", "1,2", "--dir", str(tmp_path)])
        == 0
    )
    out = capsys.readouterr().out
    assert "| variant | file | MB/s | client CPU s |" in out
    for row in ("| --parallel 1 | 8 MiB |", "| --parallel 2 | 8 MiB |", "| --parallel 2 | 12 MiB |",
                "| --parallel 2 --checksum none --no-digest | 8 MiB |"):  # fmt: skip
        assert row in out
    assert list(tmp_path.iterdir()) == []  # the work folder is removed
