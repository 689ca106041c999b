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
from typing import Any

from tusedge.checksum import Hasher
from tusedge.errors import InsufficientStorage
from tusedge.oserrors import run_storage
from tusedge.storage import fileops
from tusedge.storage.base import Capabilities


@dataclass(slots=True)
class FileWriter:
    """An upload file open for writing. ``write`` puts a batch at a given offset (and feeds the hasher in the
    same thread, so the digest costs no second pass); ``sync`` makes everything written so far durable.

    Made with a ``path`` and no ``fd``, the file is opened by the first call that needs it, in that call's
    worker thread, and :meth:`write_last` writes, syncs and closes in one: a small PATCH costs one worker
    call instead of four (open, write, sync, close); one with an empty body costs none."""

    upload_id: str
    fd: int | None
    fsync: bool
    path: str | None = None
    trimmed: bool = False  # write_last cut the file at the upload's length

    def _fd(self) -> int:
        if self.fd is None:
            assert self.path is not None, "this writer has been closed"
            self.fd = fileops.open_write(self.path)
        return self.fd

    def _write(self, buffers: Sequence[bytes], offset: int, hasher: Hasher | None) -> int:
        fd = self._fd()
        if hasher is not None:
            for buf in buffers:
                hasher.update(buf)
        return fileops.pwritev_all(fd, buffers, offset)

    async def write(self, buffers: Sequence[bytes], offset: int, hasher: Hasher | None = None) -> int:
        return await run_storage(self.upload_id, self._write, buffers, offset, hasher)

    async def write_last(
        self, buffers: Sequence[bytes], offset: int, hasher: Hasher | None = None, trim_at: int | None = None
    ) -> int:
        """The last batch of a body: write it, make everything written durable, close the file; return the
        bytes written. When it raises, nothing of this batch counts as written and the file stays open.
        ``trim_at``: when the batch ends exactly there (the upload's length), the file is cut there too,
        as :meth:`FileStore.truncate` would do for a complete upload."""

        def work() -> int:
            written = self._write(buffers, offset, hasher)
            fd = self._fd()
            if self.fsync:
                fileops.sync(fd)
            if trim_at is not None and offset + written == trim_at:
                os.ftruncate(fd, trim_at)
                self.trimmed = True
            self._close()
            return written

        return await run_storage(self.upload_id, work)

    async def sync(self) -> None:
        if self.fsync and self.fd is not None:
            await run_storage(self.upload_id, fileops.sync, self.fd)

    def _close(self) -> None:
        fd, self.fd, self.path = self.fd, None, None
        if fd is not None:
            fileops.close(fd)

    async def close(self) -> None:
        if self.fd is not None:
            await run_storage(self.upload_id, self._close)
        self.path = None


class FileStore:
    """The store contract (storage/base.py) on a local file system: every capability."""

    capabilities = Capabilities(termination=True, concatenation=True, defer_length=True, content=True)

    def __init__(self, directory: Path, *, preallocate: bool = True, fsync: bool = True) -> None:
        self.directory = directory
        self.preallocate = preallocate
        self.fsync = fsync

    def setup(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)

    def path(self, upload_id: str) -> Path:
        return self.directory / upload_id

    def joined_path(self, final_id: str) -> Path:
        """The record of the parts already joined into a final upload that waits for others."""
        return self.directory / f"{final_id}.joined"

    async def create(self, upload_id: str, length: int | None) -> None:
        await run_storage(upload_id, fileops.create, str(self.path(upload_id)), length, self.preallocate, self.fsync)

    async def ensure_space(self, needed: int) -> None:
        """Refuse early (507) when the file system has less than ``needed`` bytes free."""
        stat = await run_storage("(new)", os.statvfs, self.directory)
        if stat.f_bavail * stat.f_frsize < needed:
            raise InsufficientStorage(f"the server needs {needed} free bytes for this upload")

    async def open_writer(self, upload_id: str) -> FileWriter:
        """A writer for the upload's file; the file is opened by its first write (see FileWriter)."""
        return FileWriter(upload_id, None, self.fsync, str(self.path(upload_id)))

    async def remove(self, upload_id: str) -> None:
        def work() -> None:
            fileops.remove(str(self.path(upload_id)))
            fileops.remove(str(self.joined_path(upload_id)))  # a final removed before it was merged

        await run_storage(upload_id, work)

    async def truncate(self, upload_id: str, length: int) -> None:
        """Trim preallocated or unverified bytes past ``length`` (used once an upload is complete)."""
        await run_storage(upload_id, fileops.truncate, str(self.path(upload_id)), length)

    async def join_part(
        self, final_id: str, part_id: str, offset: int, length: int, start: int = 0
    ) -> fileops.Joined | None:
        """Join a part's first ``length`` bytes (the whole of a finished part, or the committed prefix of
        one still uploading) into a final upload that is still waiting for others, at its place
        (``offset``), sharing blocks where the file system can — only the bytes from ``start`` on, those
        before being joined already; sync the final, then record the part's prefix (``joined_path``) so the
        merge skips it. None when the final's or the part's file is gone (the
        final was removed or completed meanwhile). Safe beside a merge of the same final in any order:
        both write the same bytes to the same range, and the merge joins every part it has no record of."""

        def work() -> fileops.Joined | None:
            try:
                dst = fileops.open_write(str(self.path(final_id)))
            except FileNotFoundError:
                return None
            try:
                try:
                    src = fileops.open_read(str(self.path(part_id)))
                except FileNotFoundError:
                    return None
                try:
                    joined = fileops.join_range(src, dst, length - start, start, offset + start)
                finally:
                    fileops.close(src)
                if self.fsync:
                    fileops.sync(dst)
            finally:
                fileops.close(dst)
            fileops.record_joined(str(self.joined_path(final_id)), part_id, offset, length, self.fsync)
            return joined

        return await run_storage(final_id, work)

    async def forget_joined(self, final_id: str) -> None:
        await run_storage(final_id, fileops.remove, str(self.joined_path(final_id)))

    async def joined(self, final_id: str) -> frozenset[tuple[str, int, int]]:
        """The parts recorded by ``join_part`` as (part id, offset, length)."""
        return await run_storage(final_id, fileops.read_joined, str(self.joined_path(final_id)))

    async def merge(self, final_id: str, parts: Sequence[tuple[str, int]]) -> fileops.Joined:
        """Write the parts (id, length) one after another into the final's file, sharing their blocks
        where the file system can (reflinks: XFS, btrfs) and copying inside the kernel otherwise, then sync
        it; return how many bytes were shared and copied, and how many were there already (parts joined by
        ``join_part`` at the same place, which are skipped, and the recorded prefixes of parts joined
        while they were uploading, of which only the rest is joined). Restartable: every part without a record is
        joined again, and the final cut to its length; the record goes once the final is synced."""

        def work() -> fileops.Joined:
            recorded = fileops.read_joined(str(self.joined_path(final_id)))
            dst = fileops.open_write(str(self.path(final_id)))
            try:
                if not recorded:
                    os.ftruncate(dst, 0)  # a restarted merge starts from an empty file, not a half-joined one
                joined, offset = fileops.Joined(), 0
                for part_id, length in parts:
                    have = min(length, fileops.joined_prefix(recorded, part_id, offset) or 0)
                    joined += fileops.Joined(earlier=have)
                    if have < length:
                        src = fileops.open_read(str(self.path(part_id)))
                        try:
                            joined += fileops.join_range(src, dst, length - have, have, offset + have)
                        finally:
                            fileops.close(src)
                    offset += length
                os.ftruncate(dst, offset)
                if self.fsync:
                    fileops.sync(dst)
            finally:
                fileops.close(dst)
            fileops.remove(str(self.joined_path(final_id)))
            return joined

        return await run_storage(final_id, work)

    async def digest_merged(
        self, final_id: str, parts: Sequence[tuple[str, int]], algorithm: Callable[[], Any]
    ) -> bytes | None:
        """The digest of a merged final, its bytes read through its parts' files: just written, they are in
        the page cache, while a final whose blocks are shared with them (XFS, btrfs) is not, and reading it
        means reading the whole file from disk once more. The final is checked first to hold the parts
        (:func:`fileops.holds_parts`: its length, and each part's first and last 4 KiB at their place).
        None when that check fails or a part's file is gone or short: the caller then digests the final."""

        def work() -> bytes | None:
            fds: list[tuple[int, int]] = []
            try:
                final = fileops.open_read(str(self.path(final_id)))
                try:
                    for part_id, length in parts:
                        fds.append((fileops.open_read(str(self.path(part_id))), length))
                    if not fileops.holds_parts(final, fds):
                        return None
                finally:
                    fileops.close(final)
                hasher = algorithm()
                for fd, length in fds:
                    if not fileops.hash_range(fd, hasher, length):
                        return None
                return bytes(hasher.digest())
            except FileNotFoundError:
                return None
            finally:
                for fd, _ in fds:
                    fileops.close(fd)

        return await run_storage(final_id, work)

    async def digest(self, upload_id: str, algorithm: Callable[[], Any], length: int) -> bytes:
        """Hash the first ``length`` bytes of an upload in a worker thread (whole-file verification)."""

        def work() -> bytes:
            hasher = algorithm()
            fd = fileops.open_read(str(self.path(upload_id)))
            try:
                if not fileops.hash_range(fd, hasher, length):
                    raise OSError(errno.EIO, "upload file is shorter than its length")
            finally:
                fileops.close(fd)
            return bytes(hasher.digest())

        return await run_storage(upload_id, work)
