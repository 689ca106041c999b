"""FileStore: one file per upload under ``<data_dir>/uploads``. Every disk call runs in a worker thread.

The file is data only; the offset lives in the state database and is committed after the bytes below
it were written and synced (see docs/durability.md). With preallocation ``st_size`` is not the offset.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

import anyio.to_thread

from tusedge.checksum import Hasher
from tusedge.errors import InsufficientStorage
from tusedge.storage import fileops
from tusedge.storage.oserrors import storage_error

P = ParamSpec("P")
T = TypeVar("T")


async def run_blocking(func: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """Run ``func`` in a worker thread. It is not abandoned on cancellation: a write always finishes
    before the request that started it moves on, so nobody sees a half-known file state."""
    return await anyio.to_thread.run_sync(lambda: func(*args, **kwargs))


async def run_storage(upload_id: str, func: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """``run_blocking``, with an OSError translated into the typed error a client gets (oserrors.py)."""
    try:
        return await run_blocking(func, *args, **kwargs)
    except OSError as exc:
        raise storage_error(exc, upload_id) from exc


@dataclass(slots=True)
class FileWriter:
    """An open upload file. ``write`` appends a batch at a given offset (and feeds the hasher in the same
    thread, so the digest costs no second pass); ``sync`` makes everything written so far durable."""

    upload_id: str
    fd: int
    fsync: bool

    async def write(self, buffers: Sequence[bytes], offset: int, hasher: Hasher | None = None) -> int:
        def work() -> int:
            if hasher is not None:
                for buf in buffers:
                    hasher.update(buf)
            return fileops.pwritev_all(self.fd, buffers, offset)

        return await run_storage(self.upload_id, work)

    async def sync(self) -> None:
        if self.fsync:
            await run_storage(self.upload_id, fileops.sync, self.fd)

    async def close(self) -> None:
        await run_storage(self.upload_id, fileops.close, self.fd)


class FileStore:
    def __init__(self, directory: Path, *, preallocate: bool = True, fsync: bool = True) -> None:
        self.directory = directory
        self.preallocate = preallocate
        self.fsync = fsync

    def setup(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)

    def path(self, upload_id: str) -> Path:
        return self.directory / upload_id

    async def create(self, upload_id: str, length: int | None) -> None:
        await run_storage(upload_id, fileops.create, str(self.path(upload_id)), length, self.preallocate, self.fsync)

    async def ensure_space(self, needed: int) -> None:
        """Refuse early (507) when the file system has less than ``needed`` bytes free."""
        stat = await run_storage("(new)", os.statvfs, self.directory)
        if stat.f_bavail * stat.f_frsize < needed:
            raise InsufficientStorage(f"the server needs {needed} free bytes for this upload")

    async def open_writer(self, upload_id: str) -> FileWriter:
        fd = await run_storage(upload_id, fileops.open_write, str(self.path(upload_id)))
        return FileWriter(upload_id, fd, self.fsync)

    async def remove(self, upload_id: str) -> None:
        await run_storage(upload_id, fileops.remove, str(self.path(upload_id)))

    async def truncate(self, upload_id: str, length: int) -> None:
        """Trim preallocated or unverified bytes past ``length`` (used once an upload is complete)."""
        await run_storage(upload_id, fileops.truncate, str(self.path(upload_id)), length)

    async def merge(self, final_id: str, parts: Sequence[tuple[str, int]]) -> fileops.Joined:
        """Write the parts (id, length) one after another into the final's file, sharing their blocks
        where the file system can (reflinks: XFS, btrfs) and copying inside the kernel otherwise, then sync
        it; return how many bytes were shared and copied. Restartable: it always rewrites the final."""

        def work() -> fileops.Joined:
            dst = fileops.open_write(str(self.path(final_id)))
            try:
                os.ftruncate(dst, 0)  # a restarted merge starts from an empty file, not a half-joined one
                joined, offset = fileops.Joined(), 0
                for part_id, length in parts:
                    src = fileops.open_read(str(self.path(part_id)))
                    try:
                        joined += fileops.join_range(src, dst, length, 0, offset)
                    finally:
                        fileops.close(src)
                    offset += length
                os.ftruncate(dst, offset)
                if self.fsync:
                    fileops.sync(dst)
                return joined
            finally:
                fileops.close(dst)

        return await run_storage(final_id, work)

    async def exists(self, upload_id: str) -> bool:
        return await run_storage(upload_id, self.path(upload_id).exists)

    async def digest(self, upload_id: str, algorithm: Callable[[], Any], length: int) -> bytes:
        """Hash the first ``length`` bytes of an upload in a worker thread (whole-file verification)."""

        def work() -> bytes:
            hasher = algorithm()
            with open(self.path(upload_id), "rb", buffering=0) as fh:
                left = length
                while left > 0:
                    block = fh.read(min(left, 4 * 1024 * 1024))
                    if not block:
                        raise OSError(errno.EIO, "upload file is shorter than its length")
                    hasher.update(block)
                    left -= len(block)
            return bytes(hasher.digest())

        return await run_storage(upload_id, work)
