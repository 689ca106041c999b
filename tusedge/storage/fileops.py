"""Blocking file primitives. Each is called from a worker thread (never on the event loop) by the store."""

from __future__ import annotations

import errno
import os
from collections.abc import Sequence
from dataclasses import dataclass

from tusedge.checksum import Hasher
from tusedge.storage import reflink

IOV_MAX = os.sysconf("SC_IOV_MAX") if hasattr(os, "sysconf") else 1024
COPY_CHUNK = 64 * 1024 * 1024  # bytes per copy_file_range/sendfile call
HASH_READ = 4 * 1024 * 1024  # bytes per read while hashing
EDGE = 4096  # bytes of a merged final compared with its part at each end of the part's range


def create(path: str, length: int | None, preallocate: bool, sync_dir: bool = False) -> None:
    """Create an empty file (it must not exist) and, when asked, reserve ``length`` bytes on disk so a
    full disk fails at creation rather than half-way through a 20 GB upload. With ``sync_dir`` the new
    directory entry is made durable too: without it, a power cut could keep the upload's database row
    (and, later, synced data) while losing the file's name."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o640)
    try:
        if preallocate and length:
            try:
                os.posix_fallocate(fd, 0, length)
            except OSError as exc:
                if exc.errno not in (errno.EOPNOTSUPP, errno.EINVAL):
                    raise
    except BaseException:
        os.close(fd)
        os.unlink(path)
        raise
    os.close(fd)
    if sync_dir:
        sync_directory(os.path.dirname(path) or ".")


def sync_directory(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def open_write(path: str) -> int:
    return os.open(path, os.O_WRONLY)


def open_read(path: str) -> int:
    return os.open(path, os.O_RDONLY)


def pwritev_all(fd: int, buffers: Sequence[bytes], offset: int) -> int:
    """Write every buffer at ``offset`` in as few syscalls as the kernel allows; return bytes written."""
    total = 0
    pending = [memoryview(b) for b in buffers if b]
    while pending:
        batch = pending[:IOV_MAX]
        written = os.pwritev(fd, batch, offset + total)
        total += written
        # Drop what was written; keep the tail of a buffer the kernel only took part of.
        while written and pending:
            head = pending[0]
            if written >= len(head):
                written -= len(head)
                pending.pop(0)
            else:
                pending[0] = head[written:]
                written = 0
    return total


def sync(fd: int) -> None:
    os.fdatasync(fd)


def close(fd: int) -> None:
    os.close(fd)


def remove(path: str) -> None:
    """Delete ``path``; a file that is already gone is not an error (termination is idempotent)."""
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def truncate(path: str, length: int) -> None:
    os.truncate(path, length)


@dataclass(frozen=True, slots=True)
class Joined:
    """How the bytes of a join got into the destination: ``shared`` with the source's blocks (reflink,
    no data written) or ``copied`` (written again, inside the kernel where it can)."""

    shared: int = 0
    copied: int = 0
    earlier: int = 0  # a merge: bytes of parts already joined while the final waited for others

    def __add__(self, other: Joined) -> Joined:
        return Joined(self.shared + other.shared, self.copied + other.copied, self.earlier + other.earlier)


def join_range(src: int, dst: int, count: int, src_offset: int, dst_offset: int, share: bool = True) -> Joined:
    """Put ``src[src_offset:+count]`` at ``dst[dst_offset:]``. With ``share``, where both offsets sit on a
    block boundary the whole blocks are shared (``FICLONERANGE``, O(1)); the rest — a sub-block tail, an
    unaligned range, a file system without reflinks — is copied with :func:`copy_range`. The result says
    which happened: the ioctl either shares the whole range or changes nothing, so ``shared`` is exact
    and ``copied`` is the rest."""
    shared = 0
    if share and count > 0:
        block = reflink.block_size(dst)
        if src_offset % block == 0 and dst_offset % block == 0:
            # A range of whole blocks can be shared anywhere (a part joined out of order, into the middle of
            # a final that already holds later parts); one that ends mid-block only when it ends at the
            # source's end of file with nothing after it in the destination (the kernel refuses otherwise).
            at_end = src_offset + count == os.fstat(src).st_size and os.fstat(dst).st_size <= dst_offset + count
            tries = [count] if at_end or count % block == 0 else []
            if count % block and count > block:
                tries.append(count - count % block)  # at least the whole blocks, copying the tail
            for whole in tries:
                try:
                    reflink.clone_range(src, dst, whole, src_offset, dst_offset)
                except OSError as exc:
                    if exc.errno not in reflink.UNSUPPORTED:
                        raise
                    continue
                shared = whole
                break
    copy_range(src, dst, count - shared, src_offset + shared, dst_offset + shared)
    return Joined(shared, count - shared)


def copy_range(src: int, dst: int, count: int, src_offset: int, dst_offset: int) -> None:
    """Copy ``count`` bytes between files inside the kernel: ``copy_file_range`` (reflinks or in-kernel
    copy), then ``sendfile``; only across file systems that refuse both, a bounded user-space copy."""
    done = 0
    mode = "copy_file_range" if hasattr(os, "copy_file_range") else "sendfile"
    while done < count:
        step = min(COPY_CHUNK, count - done)
        if mode == "copy_file_range":
            try:
                n = os.copy_file_range(src, dst, step, src_offset + done, dst_offset + done)
            except OSError as exc:
                if exc.errno not in (errno.EXDEV, errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
                    raise
                mode = "sendfile"
                continue
        elif mode == "sendfile":
            try:
                os.lseek(dst, dst_offset + done, os.SEEK_SET)
                n = os.sendfile(dst, src, src_offset + done, step)
            except OSError as exc:
                if exc.errno not in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
                    raise
                mode = "read"
                continue
        else:
            data = os.pread(src, min(step, 1024 * 1024), src_offset + done)
            n = pwritev_all(dst, [data], dst_offset + done) if data else 0
        if n == 0:
            raise OSError(errno.EIO, f"source ended {count - done} bytes early")
        done += n


# The record of the parts joined into a final upload before its last part was in (``FileStore.join_part``):
# one line per join, ``<part id> <offset> <length>``: the part's first ``length`` bytes are at ``offset`` in
# the final (the whole part, or the prefix of one still uploading: a part has a line per join, the longest
# counts), appended and synced after the part's bytes in the final are synced. A line cut short by a crash
# is not a record (it has no newline); neither is a lost file: the merge then joins that part again, which
# only costs time.
def record_joined(path: str, part_id: str, offset: int, length: int, sync: bool) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
    try:
        os.write(fd, f"{part_id} {offset} {length}\n".encode())
        if sync:
            os.fsync(fd)
    finally:
        os.close(fd)


def read_joined(path: str) -> frozenset[tuple[str, int, int]]:
    """The (part id, offset, length) records in ``path``; none when it does not exist."""
    try:
        with open(path, "rb") as fh:
            text = fh.read().decode("ascii", "replace")
    except FileNotFoundError:
        return frozenset()
    records = set()
    for line in text.split("\n")[:-1]:  # the piece after the last newline is no record
        fields = line.split(" ")
        if len(fields) == 3 and fields[1].isdigit() and fields[2].isdigit():
            records.add((fields[0], int(fields[1]), int(fields[2])))
    return frozenset(records)


def hash_range(fd: int, hasher: Hasher, length: int, offset: int = 0) -> bool:
    """Feed ``hasher`` the bytes ``[offset, offset + length)`` of ``fd``; False if the file ends before."""
    buf = bytearray(min(HASH_READ, max(length, 1)))
    view = memoryview(buf)
    done = 0
    while done < length:
        n = os.preadv(fd, [view[: min(len(buf), length - done)]], offset + done)
        if n == 0:
            return False
        hasher.update(view[:n])
        done += n
    return True


def holds_parts(final: int, parts: Sequence[tuple[int, int]]) -> bool:
    """Whether ``final`` is, by its length and at both ends of every part's range, its parts (fd, length)
    one after another: what a misplaced or missing join would break."""
    offset = 0
    for fd, length in parts:
        for at in sorted({0, max(0, length - EDGE)}):
            n = min(EDGE, length - at)
            if os.pread(final, n, offset + at) != os.pread(fd, n, at):
                return False
        offset += length
    return os.fstat(final).st_size == offset


def joined_prefix(recorded: frozenset[tuple[str, int, int]], part_id: str, offset: int) -> int | None:
    """How many of a part's first bytes the record says are in the final at ``offset`` (None: no record)."""
    lengths = [length for pid, at, length in recorded if pid == part_id and at == offset]
    return max(lengths) if lengths else None
