"""Real file systems for tests (benchmarks/loopfs.py): ext4, XFS with ``reflink=1`` and btrfs images,
loop-mounted under the test's tmp dir and removed at teardown. Without root or the mkfs tools (.ci/run
installs xfsprogs and btrfs-progs) a test that needs one is skipped with the reason, never passed."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from benchmarks import loopfs
from benchmarks.loopfs import REFLINKS, used_bytes

__all__ = ["REFLINKS", "loop_filesystem", "used_bytes"]


@contextlib.contextmanager
def loop_filesystem(kind: str, folder: Path, size: int = 1 << 30) -> Iterator[Path]:
    reason = loopfs.unavailable(kind)
    if reason is not None:
        pytest.skip(reason)
    with loopfs.loop_filesystem(kind, folder, size) as mount:
        yield mount
