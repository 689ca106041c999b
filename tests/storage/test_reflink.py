"""Zero-copy merges: on real loop-mounted ext4, XFS and btrfs, ``join_range`` and ``FileStore.merge`` share
blocks where the file system has reflinks and the offsets are aligned, copy otherwise, and report which."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from fiemap import shared_bytes
from loopfs import REFLINKS, loop_filesystem, used_bytes

from tusedge.storage import fileops
from tusedge.storage.filestore import FileStore

BLOCK = 4096
MIB = 1024 * 1024


@pytest.fixture(scope="module", params=["ext4", "xfs", "btrfs"])
def fs(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    kind: str = request.param
    with loop_filesystem(kind, tmp_path_factory.mktemp(kind)) as mount:
        yield kind, mount


def write(path: Path, data: bytes) -> None:
    with open(path, "wb") as fh:
        fh.write(data)
        os.fsync(fh.fileno())


def test_join_range_shares_a_range_at_aligned_offsets_up_to_the_sources_end(fs: tuple[str, Path]) -> None:
    """Aligned offsets, an odd length that ends at the source's end of file and nothing after it in the
    destination: every byte shared, the partial last block too."""
    kind, mount = fs
    data = os.urandom(3 * BLOCK + 100)
    write(mount / "src1", data)
    src, dst = os.open(mount / "src1", os.O_RDONLY), os.open(mount / "dst1", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        joined = fileops.join_range(src, dst, len(data), 0, BLOCK)
        os.fsync(dst)
        shared_on_disk = shared_bytes(dst)
    finally:
        os.close(src)
        os.close(dst)
    expect_shared = len(data) if REFLINKS[kind] else 0
    assert joined == fileops.Joined(shared=expect_shared, copied=len(data) - expect_shared)
    assert (mount / "dst1").read_bytes() == bytes(BLOCK) + data
    # The file system agrees: FIEMAP flags those blocks as shared (and none on ext4).
    assert shared_on_disk == expect_shared


def test_join_range_copies_when_the_destination_offset_is_unaligned(fs: tuple[str, Path]) -> None:
    _, mount = fs
    data = os.urandom(4 * BLOCK)
    write(mount / "src2", data)
    src, dst = os.open(mount / "src2", os.O_RDONLY), os.open(mount / "dst2", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        joined = fileops.join_range(src, dst, len(data), 0, 7)
    finally:
        os.close(src)
        os.close(dst)
    assert joined == fileops.Joined(shared=0, copied=len(data))
    assert (mount / "dst2").read_bytes() == bytes(7) + data


def test_join_range_shares_whole_blocks_and_copies_a_tail_that_has_bytes_after_it(fs: tuple[str, Path]) -> None:
    """A part joined into the middle of a final that already holds a later part (joins out of order):
    its whole blocks are shared, its partial last block is copied and what follows it is left intact."""
    kind, mount = fs
    head, tail = os.urandom(2 * BLOCK + 10), os.urandom(3 * BLOCK)
    write(mount / "head", head)
    write(mount / "dst3", bytes(len(head)) + tail)
    src, dst = os.open(mount / "head", os.O_RDONLY), os.open(mount / "dst3", os.O_RDWR)
    try:
        joined = fileops.join_range(src, dst, len(head), 0, 0)
    finally:
        os.close(src)
        os.close(dst)
    assert (mount / "dst3").read_bytes() == head + tail
    assert joined == (fileops.Joined(2 * BLOCK, 10) if REFLINKS[kind] else fileops.Joined(0, len(head)))


def test_join_range_shares_a_whole_block_range_that_is_not_at_either_files_end(fs: tuple[str, Path]) -> None:
    """A part of whole blocks joined out of order — into the middle of a final that already holds a later
    part, from the middle of its source — is shared whole: nothing is copied, what follows it is intact."""
    kind, mount = fs
    source, later = os.urandom(6 * BLOCK), os.urandom(3 * BLOCK + 77)
    write(mount / "src4", source)
    write(mount / "dst4", bytes(4 * BLOCK) + later)
    src, dst = os.open(mount / "src4", os.O_RDONLY), os.open(mount / "dst4", os.O_RDWR)
    try:
        joined = fileops.join_range(src, dst, 4 * BLOCK, BLOCK, 0)
        os.fsync(dst)
        shared_on_disk = shared_bytes(dst, 0, 4 * BLOCK)
    finally:
        os.close(src)
        os.close(dst)
    assert (mount / "dst4").read_bytes() == source[BLOCK : 5 * BLOCK] + later
    expect_shared = 4 * BLOCK if REFLINKS[kind] else 0
    assert joined == fileops.Joined(shared=expect_shared, copied=4 * BLOCK - expect_shared)
    assert shared_on_disk == expect_shared


async def test_merge_of_aligned_parts_shares_their_blocks_and_uses_no_second_copy(fs: tuple[str, Path]) -> None:
    """concat.final on a reflink file system: parts on block boundaries (the last one odd-sized) are joined
    without writing a byte again — the file system's used space hardly grows — and the result is the parts
    in order. On ext4 the same merge copies everything."""
    kind, mount = fs
    store = FileStore(mount / "uploads")
    store.setup()
    sizes = [4 * MIB, 4 * MIB, 8 * MIB, 3 * MIB + 12_345]
    parts, whole = [], hashlib.sha256()
    for i, size in enumerate(sizes):
        part_id = f"{i:032x}"
        data = os.urandom(size)
        whole.update(data)
        write(store.path(part_id), data)
        parts.append((part_id, size))
    final = "f" * 32
    await store.create(final, None)
    before = used_bytes(mount)
    joined = await store.merge(final, parts)
    grew = used_bytes(mount) - before
    total = sum(sizes)
    assert hashlib.sha256(store.path(final).read_bytes()).hexdigest() == whole.hexdigest()
    assert joined.shared + joined.copied == total
    if REFLINKS[kind]:
        assert joined == fileops.Joined(shared=total, copied=0)
        assert grew < total // 10, f"used space grew by {grew} bytes for a {total}-byte merge"
    else:
        assert joined == fileops.Joined(shared=0, copied=total)
        assert grew >= total


async def test_merge_of_unaligned_parts_shares_what_it_can_and_copies_the_rest(fs: tuple[str, Path]) -> None:
    """Parts split at ``size // N`` (other clients): the first part starts on a block boundary and is shared,
    every later one starts mid-block in the final and is copied; the content is exact either way."""
    kind, mount = fs
    store = FileStore(mount / "uploads-unaligned")
    store.setup()
    sizes = [1_000_001, 1_000_001, 1_000_003]
    parts, whole = [], b""
    for i, size in enumerate(sizes):
        data = os.urandom(size)
        whole += data
        write(store.path(f"{i:032x}"), data)
        parts.append((f"{i:032x}", size))
    final = "e" * 32
    await store.create(final, None)
    joined = await store.merge(final, parts)
    assert store.path(final).read_bytes() == whole
    expect_shared = sizes[0] if REFLINKS[kind] else 0
    assert joined == fileops.Joined(shared=expect_shared, copied=sum(sizes) - expect_shared)
