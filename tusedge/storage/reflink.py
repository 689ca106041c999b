"""Block sharing between files: ``FICLONERANGE`` (reflink) and the ``FIEMAP`` report of shared extents.

File systems with reflinks (XFS with ``reflink=1``, btrfs, bcachefs, OCFS2) can make a range of one file
point at another file's blocks instead of copying them: O(1) in the number of bytes, no second copy on disk
until one of them is written to (copy on write). ``FICLONERANGE`` asks for exactly that and fails instead of
quietly copying, so success means the blocks are shared. Its rules (``generic_remap_checks``): both offsets
on a block boundary and the length a multiple of the block, except that a range ending at the source's end
of file may end mid-block. ext4, tmpfs and most others refuse it (``EOPNOTSUPP``); a range across two file
systems gets ``EXDEV``.
"""

from __future__ import annotations

import errno
import fcntl
import os
import struct

# linux/fs.h: #define FICLONERANGE _IOW(0x94, 13, struct file_clone_range)
FICLONERANGE = 0x4020940D
_CLONE_RANGE = struct.Struct("=qQQQ")  # src_fd, src_offset, src_length, dest_offset

# linux/fs.h: #define FS_IOC_FIEMAP _IOWR('f', 11, struct fiemap); linux/fiemap.h for the structs and flags.
FS_IOC_FIEMAP = 0xC020660B
_FIEMAP = struct.Struct("=QQIIII")  # fm_start, fm_length, fm_flags, fm_mapped_extents, fm_extent_count, reserved
_EXTENT = struct.Struct("=QQQQQIIII")  # logical, physical, length, reserved64[2], flags, reserved[3]
FIEMAP_FLAG_SYNC = 0x1
FIEMAP_EXTENT_LAST = 0x1
FIEMAP_EXTENT_SHARED = 0x2000
_EXTENTS_PER_CALL = 256

# What a file system (or the pair of files) answers when it cannot share blocks at all. EINVAL also means
# "these offsets are not aligned"; the caller only asks for aligned ranges, so it means "not here" too.
UNSUPPORTED = frozenset({errno.EOPNOTSUPP, errno.ENOTTY, errno.EXDEV, errno.EINVAL, errno.ENOSYS, errno.EPERM})


def block_size(fd: int) -> int:
    """The unit ``FICLONERANGE`` aligns to: the file system's block size."""
    return os.fstatvfs(fd).f_bsize


def clone_range(src: int, dst: int, count: int, src_offset: int, dst_offset: int) -> None:
    """Make ``dst[dst_offset:+count]`` share ``src[src_offset:+count]``'s blocks, or raise OSError (then
    nothing was changed: the ioctl is all or nothing). See the module docstring for the alignment rules."""
    fcntl.ioctl(dst, FICLONERANGE, _CLONE_RANGE.pack(src, src_offset, count, dst_offset))


def shared_bytes(fd: int, start: int = 0, length: int | None = None) -> int:
    """Bytes of ``fd[start:+length]`` (default: to its end) that sit in extents the file system reports
    as shared with another file (``FIEMAP_EXTENT_SHARED``). 0 where FIEMAP is not supported."""
    end = os.fstat(fd).st_size if length is None else start + length
    total, position = 0, start
    while position < end:
        request = _FIEMAP.pack(position, end - position, FIEMAP_FLAG_SYNC, 0, _EXTENTS_PER_CALL, 0)
        buffer = bytearray(request + bytes(_EXTENT.size * _EXTENTS_PER_CALL))
        try:
            fcntl.ioctl(fd, FS_IOC_FIEMAP, buffer)
        except OSError as exc:
            if exc.errno in UNSUPPORTED:
                return 0
            raise
        mapped = _FIEMAP.unpack_from(buffer)[3]
        if mapped == 0:
            break
        last = False
        for i in range(mapped):
            logical, _physical, extent_length, _r1, _r2, flags, *_ = _EXTENT.unpack_from(
                buffer, _FIEMAP.size + i * _EXTENT.size
            )
            lo, hi = max(logical, start), min(logical + extent_length, end)
            if flags & FIEMAP_EXTENT_SHARED and hi > lo:
                total += hi - lo
            position = max(position, logical + extent_length)
            last = last or bool(flags & FIEMAP_EXTENT_LAST)
        if last:
            break
    return total
