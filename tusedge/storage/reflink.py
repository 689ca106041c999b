"""Block sharing between files: ``FICLONERANGE`` (reflink).

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
