"""tusedge.storage.fileops: the blocking primitives under the store, on real files in a tmp dir.

Short writes are produced by the kernel itself: a child process sets RLIMIT_FSIZE, so ``pwritev`` stops at
the limit (Linux returns the bytes written below it), and lifts the limit right after that short write.
"""

from __future__ import annotations

import errno
import json
import os
import random
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from tusedge.storage import fileops

# Child: pwritev_all under RLIMIT_FSIZE=limit. With lift=1 the limit is lifted as soon as a pwritev has filled
# the file up to it (a profile hook on the C call's return), so pwritev_all must go on with the tail.
_SHORT_WRITE_CHILD = """
import json, os, resource, signal, sys
from tusedge.storage import fileops

path, limit, lift, sizes = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "1", json.loads(sys.argv[4])
buffers = [bytes([i % 251]) * n for i, n in enumerate(sizes)]
fd = os.open(path, os.O_WRONLY)
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
sizes_after_call = []

def hook(frame, event, arg):
    if event == "c_return" and arg is os.pwritev:
        size = os.fstat(fd).st_size
        sizes_after_call.append(size)
        if lift and size == limit:
            resource.setrlimit(resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))

resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))
sys.setprofile(hook)
try:
    total = fileops.pwritev_all(fd, buffers, 0)
    error = None
except OSError as exc:
    total, error = None, exc.errno
sys.setprofile(None)
print(json.dumps({"total": total, "error": error, "sizes_after_call": sizes_after_call}))
"""


def _run_short_write_child(path: Path, limit: int, lift: bool, sizes: list[int]) -> dict[str, object]:
    path.write_bytes(b"")
    proc = subprocess.run(
        [sys.executable, "-c", _SHORT_WRITE_CHILD, str(path), str(limit), "1" if lift else "0", json.dumps(sizes)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    result: dict[str, object] = json.loads(proc.stdout)
    return result


def _pattern(sizes: list[int]) -> bytes:
    return b"".join(bytes([i % 251]) * n for i, n in enumerate(sizes))


def test_pwritev_all_writes_more_buffers_than_iov_max(tmp_path: Path) -> None:
    """The kernel takes at most IOV_MAX buffers per call; every buffer must still land, in order."""
    rng = random.Random(7)
    buffers = [rng.randbytes(rng.randint(0, 9)) for _ in range(3 * fileops.IOV_MAX + 7)]
    path = tmp_path / "f"
    path.write_bytes(b"HEAD")
    fd = os.open(path, os.O_WRONLY)
    try:
        written = fileops.pwritev_all(fd, buffers, 4)
    finally:
        os.close(fd)
    data = b"".join(buffers)
    assert written == len(data)
    assert path.read_bytes() == b"HEAD" + data


def test_pwritev_all_of_nothing_writes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"keep")
    fd = os.open(path, os.O_WRONLY)
    try:
        assert fileops.pwritev_all(fd, [], 0) == 0
        assert fileops.pwritev_all(fd, [b"", b""], 0) == 0
    finally:
        os.close(fd)
    assert path.read_bytes() == b"keep"


@pytest.mark.parametrize(
    ("sizes", "limit"),
    [
        ([7] * 40, 100),  # the short write ends inside the 15th buffer of the first call
        ([3] * (3 * 1024), 5000),  # ... inside a buffer of the second IOV_MAX batch
        ([50, 1, 1, 1, 50], 51),  # ... exactly at a buffer boundary
    ],
)
def test_pwritev_all_continues_after_a_short_write(tmp_path: Path, sizes: list[int], limit: int) -> None:
    """A short write keeps the unwritten tail of the buffer the kernel took only part of."""
    path = tmp_path / "f"
    result = _run_short_write_child(path, limit, lift=True, sizes=sizes)
    sizes_after_call = result["sizes_after_call"]
    assert isinstance(sizes_after_call, list)
    assert limit in sizes_after_call  # the kernel did stop at the limit: a real short write happened
    assert len(sizes_after_call) >= 2
    assert result == {"total": sum(sizes), "error": None, "sizes_after_call": sizes_after_call}
    assert path.read_bytes() == _pattern(sizes)


def test_pwritev_all_raises_when_the_disk_refuses_more(tmp_path: Path) -> None:
    """A write that cannot go on ends in an OSError (not a silent short count, not a loop); what the kernel
    took before is the exact prefix."""
    path = tmp_path / "f"
    sizes = [7] * 40
    result = _run_short_write_child(path, 100, lift=False, sizes=sizes)
    assert result["total"] is None
    assert result["error"] == errno.EFBIG
    assert path.read_bytes() == _pattern(sizes)[:100]


# --- create / remove / truncate ---------------------------------------------------------------------


@pytest.mark.parametrize(("length", "preallocate", "size"), [(None, True, 0), (0, True, 0), (1 << 20, False, 0)])
def test_create_makes_an_empty_file(tmp_path: Path, length: int | None, preallocate: bool, size: int) -> None:
    path = tmp_path / "f"
    fileops.create(str(path), length, preallocate)
    assert path.stat().st_size == size


def test_create_preallocates_the_length(tmp_path: Path) -> None:
    """Preallocation reserves the blocks, so a full disk fails at creation (st_size is then not the offset)."""
    path = tmp_path / "f"
    fileops.create(str(path), 3 << 20, True)
    stat = path.stat()
    assert stat.st_size == 3 << 20
    assert stat.st_blocks * 512 >= 3 << 20
    assert path.read_bytes() == bytes(3 << 20)


def test_create_refuses_an_existing_file_and_leaves_it_alone(tmp_path: Path) -> None:
    """O_EXCL: creating an upload never truncates another one's data."""
    path = tmp_path / "f"
    path.write_bytes(b"someone's data")
    with pytest.raises(FileExistsError):
        fileops.create(str(path), 10, True)
    assert path.read_bytes() == b"someone's data"


def test_create_removes_the_file_when_preallocation_fails(tmp_path: Path) -> None:
    path = tmp_path / "f"
    with pytest.raises(OSError) as info:
        fileops.create(str(path), 2**62, True)
    assert info.value.errno in (errno.EFBIG, errno.ENOSPC)
    assert not path.exists()


def test_remove_is_idempotent(tmp_path: Path) -> None:
    """term.204: termination is idempotent; removing a missing file is not an error."""
    path = tmp_path / "f"
    path.write_bytes(b"x")
    fileops.remove(str(path))
    assert not path.exists()
    fileops.remove(str(path))
    fileops.remove(str(tmp_path / "never-existed"))


def test_truncate(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"0123456789")
    fileops.truncate(str(path), 4)
    assert path.read_bytes() == b"0123"


def test_open_write_does_not_truncate_and_open_read_reads(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"abcdef")
    fd = fileops.open_write(str(path))
    try:
        assert fileops.pwritev_all(fd, [b"XY"], 2) == 2
        fileops.sync(fd)
    finally:
        fileops.close(fd)
    fd = fileops.open_read(str(path))
    try:
        assert os.pread(fd, 100, 0) == b"abXYef"
    finally:
        fileops.close(fd)
    with pytest.raises(FileNotFoundError):
        fileops.open_write(str(tmp_path / "missing"))


# --- copy_range ---------------------------------------------------------------------------------------

SOURCE = random.Random(1).randbytes(100_000)


def _copy(src_path: Path, dst_path: Path, count: int, src_offset: int, dst_offset: int) -> None:
    src = os.open(src_path, os.O_RDONLY)
    dst = os.open(dst_path, os.O_WRONLY)
    try:
        fileops.copy_range(src, dst, count, src_offset, dst_offset)
    finally:
        os.close(src)
        os.close(dst)


def _expected(dst_before: bytes, count: int, src_offset: int, dst_offset: int) -> bytes:
    out = bytearray(dst_before)
    if len(out) < dst_offset + count:
        out.extend(bytes(dst_offset + count - len(out)))
    out[dst_offset : dst_offset + count] = SOURCE[src_offset : src_offset + count]
    return bytes(out)


COPY_CASES = [
    (0, 0, 0),
    (1, 0, 0),
    (100_000, 0, 0),
    (100_000 - 12_345, 12_345, 777),
    (4097 * 3, 1, 0),  # exactly three chunks
    (4097 * 3 + 1, 0, 1),  # one byte into a fourth chunk
    (4096, 50_000, 4097 * 2 + 5),
    (10, 99_990, 60_000),  # beyond the end of the destination: the file grows
]


@pytest.mark.parametrize(("count", "src_offset", "dst_offset"), COPY_CASES)
def test_copy_range_copies_exact_bytes_across_chunks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, count: int, src_offset: int, dst_offset: int
) -> None:
    """Merging partial uploads (concat.final: its content is the partials in order) copies byte ranges;
    COPY_CHUNK is made small so that every count spans several kernel calls."""
    monkeypatch.setattr(fileops, "COPY_CHUNK", 4097)
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.write_bytes(SOURCE)
    before = b"\xee" * 50_000
    dst.write_bytes(before)
    _copy(src, dst, count, src_offset, dst_offset)
    assert dst.read_bytes() == _expected(before, count, src_offset, dst_offset)


@pytest.mark.parametrize(("count", "src_offset", "dst_offset"), COPY_CASES[2:5])
def test_copy_range_between_file_systems(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, count: int, src_offset: int, dst_offset: int
) -> None:
    """From tmpfs (/dev/shm) to the tmp dir's file system: copy_file_range may refuse (EXDEV) and the
    copy goes on by another path; the bytes must be the same."""
    monkeypatch.setattr(fileops, "COPY_CHUNK", 4097)
    with tempfile.TemporaryDirectory(dir="/dev/shm") as shm:
        src = Path(shm) / "src"
        src.write_bytes(SOURCE)
        assert os.stat(src).st_dev != os.stat(tmp_path).st_dev
        dst = tmp_path / "dst"
        before = b"\xee" * 50_000
        dst.write_bytes(before)
        _copy(src, dst, count, src_offset, dst_offset)
    assert dst.read_bytes() == _expected(before, count, src_offset, dst_offset)


def test_copy_range_from_a_short_source_is_an_io_error(tmp_path: Path) -> None:
    """A part shorter than its recorded length must not make a final that silently lacks bytes."""
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.write_bytes(b"x" * 100)
    dst.write_bytes(b"")
    with pytest.raises(OSError) as info:
        _copy(src, dst, 200, 0, 0)
    assert info.value.errno == errno.EIO
