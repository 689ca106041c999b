"""tusedge.storage.filestore: FileStore and FileWriter on a real tmp dir; errors translated at the store's edge."""

from __future__ import annotations

import hashlib
import os
import random
import zlib
from pathlib import Path

import pytest

from tusedge.checksum import Crc32, new_hasher
from tusedge.errors import ChecksumAlgorithmUnsupported, InsufficientStorage, StorageFailed, UploadNotFound
from tusedge.storage.filestore import FileStore, FileWriter

UPLOAD = "a" * 32


def _store(tmp_path: Path, *, preallocate: bool = True, fsync: bool = True) -> FileStore:
    store = FileStore(tmp_path / "uploads", preallocate=preallocate, fsync=fsync)
    store.setup()
    return store


def test_setup_creates_the_directory(tmp_path: Path) -> None:
    store = FileStore(tmp_path / "a" / "b")
    store.setup()
    store.setup()
    assert (tmp_path / "a" / "b").is_dir()
    assert store.path(UPLOAD) == tmp_path / "a" / "b" / UPLOAD


@pytest.mark.parametrize(("preallocate", "length", "size"), [(True, 5000, 5000), (False, 5000, 0), (True, None, 0)])
async def test_create_with_and_without_preallocation(
    tmp_path: Path, preallocate: bool, length: int | None, size: int
) -> None:
    store = _store(tmp_path, preallocate=preallocate)
    await store.create(UPLOAD, length)
    assert store.path(UPLOAD).exists()
    assert store.path(UPLOAD).stat().st_size == size


async def test_create_never_reuses_an_existing_file(tmp_path: Path) -> None:
    store = _store(tmp_path)
    store.path(UPLOAD).write_bytes(b"data")
    with pytest.raises(StorageFailed, match="exists"):  # no OSError leaves the store (oserrors.py)
        await store.create(UPLOAD, 10)
    assert store.path(UPLOAD).read_bytes() == b"data"


async def test_open_writer_of_missing_upload_is_upload_not_found(tmp_path: Path) -> None:
    """STYLE habit 10: "FileNotFoundError becomes UploadNotFound inside filestore.py". The writer opens the
    file in its first write (one worker call for a small body), so that is where a missing file shows."""
    store = _store(tmp_path)
    writer = await store.open_writer(UPLOAD)
    for first_write in (writer.write([b"x"], 0), writer.write_last([b"x"], 0)):
        with pytest.raises(UploadNotFound) as info:
            await first_write
        assert info.value.status == 404
        assert isinstance(info.value.__cause__, FileNotFoundError)
    await writer.close()


async def test_truncate_of_missing_upload_is_upload_not_found(tmp_path: Path) -> None:
    with pytest.raises(UploadNotFound):
        await _store(tmp_path).truncate(UPLOAD, 0)


async def test_remove_is_idempotent(tmp_path: Path) -> None:
    """term.204 / STYLE habit 10: deleting an already-missing file succeeds."""
    store = _store(tmp_path)
    await store.create(UPLOAD, 10)
    await store.remove(UPLOAD)
    assert not store.path(UPLOAD).exists()
    await store.remove(UPLOAD)


@pytest.mark.parametrize("algorithm", ["sha1", "md5", "sha256", "sha512"])
async def test_writer_writes_batches_and_feeds_the_hasher(tmp_path: Path, algorithm: str) -> None:
    """sum.ok: the hasher sees exactly the bytes written, in order, so its digest equals hashlib's."""
    store = _store(tmp_path, preallocate=False)
    await store.create(UPLOAD, None)
    rng = random.Random(3)
    batches = [[rng.randbytes(rng.randint(0, 5000)) for _ in range(rng.randint(1, 50))] for _ in range(20)]
    hasher = new_hasher(algorithm)
    writer = await store.open_writer(UPLOAD)
    offset = 0
    try:
        for batch in batches:
            offset += await writer.write(batch, offset, hasher)
        await writer.sync()
    finally:
        await writer.close()
    data = b"".join(b"".join(batch) for batch in batches)
    assert offset == len(data)
    assert store.path(UPLOAD).read_bytes() == data
    assert hasher.digest() == hashlib.new(algorithm, data).digest()


async def test_crc32_hasher_matches_zlib(tmp_path: Path) -> None:
    store = _store(tmp_path)
    await store.create(UPLOAD, 30)
    hasher = Crc32()
    writer = await store.open_writer(UPLOAD)
    try:
        await writer.write([b"0123456789", b"", b"abcdefghijklmnopqrst"], 0, hasher)
    finally:
        await writer.close()
    assert hasher.digest() == zlib.crc32(b"0123456789abcdefghijklmnopqrst").to_bytes(4, "big")


def test_unknown_checksum_algorithm_is_400() -> None:
    """sum.unsupported-400: "If the hash algorithm is not supported by the server, ... 400"."""
    with pytest.raises(ChecksumAlgorithmUnsupported) as info:
        new_hasher("sha3-1024")
    assert info.value.status == 400


async def test_writes_at_offsets_fill_a_preallocated_file(tmp_path: Path) -> None:
    store = _store(tmp_path)
    await store.create(UPLOAD, 10)
    writer = await store.open_writer(UPLOAD)
    try:
        assert await writer.write([b"56789"], 5) == 5
        assert await writer.write([b"01", b"234"], 0) == 5
    finally:
        await writer.close()
    assert store.path(UPLOAD).read_bytes() == b"0123456789"


async def test_full_disk_on_write_is_insufficient_storage() -> None:
    """ENOSPC becomes a 507 at the store's edge (/dev/full answers every write with ENOSPC)."""
    writer = FileWriter(UPLOAD, os.open("/dev/full", os.O_WRONLY), fsync=False)
    try:
        with pytest.raises(InsufficientStorage) as info:
            await writer.write([b"abc"], 0)
    finally:
        await writer.close()
    assert info.value.status == 507


async def test_ensure_space(tmp_path: Path) -> None:
    store = _store(tmp_path)
    await store.ensure_space(0)
    await store.ensure_space(1 << 20)
    with pytest.raises(InsufficientStorage):
        await store.ensure_space(2**62)


async def test_truncate_trims_preallocated_space(tmp_path: Path) -> None:
    store = _store(tmp_path)
    await store.create(UPLOAD, 1000)
    await store.truncate(UPLOAD, 10)
    assert store.path(UPLOAD).stat().st_size == 10


async def test_merge_writes_parts_in_order_and_is_restartable(tmp_path: Path) -> None:
    """concat.final: its content is the partials in order; the merge always rewrites from offset 0."""
    store = _store(tmp_path)
    rng = random.Random(5)
    parts = {f"{i:032x}": rng.randbytes(size) for i, size in enumerate([1000, 0, 70_000, 1])}
    for part_id, data in parts.items():
        store.path(part_id).write_bytes(data + b"trailing bytes past the part's length")
    final = "f" * 32
    await store.create(final, 200_000)  # preallocated larger than the result: trimmed by the merge
    plan = [(part_id, len(data)) for part_id, data in parts.items()]
    await store.merge(final, plan)
    expected = b"".join(parts.values())
    assert store.path(final).read_bytes() == expected
    await store.merge(final, plan)
    assert store.path(final).read_bytes() == expected
    assert await store.digest(final, hashlib.sha256, len(expected)) == hashlib.sha256(expected).digest()


async def _merged(tmp_path: Path, sizes: list[int]) -> tuple[FileStore, str, list[tuple[str, int]], bytes]:
    store = _store(tmp_path)
    rng = random.Random(11)
    parts = {f"{i:032x}": rng.randbytes(size) for i, size in enumerate(sizes)}
    for part_id, data in parts.items():
        store.path(part_id).write_bytes(data)
    final = "f" * 32
    await store.create(final, None)
    plan = [(part_id, len(data)) for part_id, data in parts.items()]
    await store.merge(final, plan)
    return store, final, plan, b"".join(parts.values())


async def test_digest_of_a_merged_final_through_its_parts_equals_the_finals(tmp_path: Path) -> None:
    """Whole-file verification of a final reads its parts' files (in the page cache) for the final's digest."""
    store, final, plan, whole = await _merged(tmp_path, [300_000, 0, 4096, 5_000_001, 7])
    assert await store.digest_merged(final, plan, hashlib.sha256) == hashlib.sha256(whole).digest()
    assert await store.digest_merged(final, plan, Crc32) == zlib.crc32(whole).to_bytes(4, "big")


@pytest.mark.parametrize("where", ["first byte of a part", "last byte of a part", "an extra byte"])
async def test_digest_through_parts_refused_when_the_final_does_not_hold_them(tmp_path: Path, where: str) -> None:
    """A final that differs from its parts at a part's ends or in length (a join misplaced or missing) is
    not vouched for by its parts: None, and the finisher digests the final itself."""
    store, final, plan, whole = await _merged(tmp_path, [10_000, 20_000, 30_000])
    data = bytearray(whole)
    if where == "an extra byte":
        data += b"x"
    else:
        data[10_000 if where == "first byte of a part" else 29_999] ^= 0xFF
    store.path(final).write_bytes(bytes(data))
    assert await store.digest_merged(final, plan, hashlib.sha256) is None


async def test_digest_through_parts_refused_when_a_part_is_gone_or_short(tmp_path: Path) -> None:
    store, final, plan, _ = await _merged(tmp_path, [10_000, 20_000])
    store.path(plan[1][0]).write_bytes(b"short")
    assert await store.digest_merged(final, plan, hashlib.sha256) is None
    store.path(plan[1][0]).unlink()
    assert await store.digest_merged(final, plan, hashlib.sha256) is None


async def test_merge_with_a_missing_part_is_upload_not_found(tmp_path: Path) -> None:
    store = _store(tmp_path)
    await store.create("f" * 32, None)
    with pytest.raises(UploadNotFound):
        await store.merge("f" * 32, [("0" * 32, 10)])


async def test_digest_of_a_prefix(tmp_path: Path) -> None:
    store = _store(tmp_path)
    data = random.Random(9).randbytes(10_000)
    store.path(UPLOAD).write_bytes(data)
    assert await store.digest(UPLOAD, hashlib.sha1, 4321) == hashlib.sha1(data[:4321]).digest()
    with pytest.raises(StorageFailed, match="shorter"):
        await store.digest(UPLOAD, hashlib.sha1, 10_001)
