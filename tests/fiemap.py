"""How many bytes of a file share their blocks with another file, as the file system reports it (``FIEMAP``'s
``FIEMAP_EXTENT_SHARED``): what the zero-copy merge tests check their joins against."""

from __future__ import annotations

import fcntl
import os
import struct

from tusedge.storage.reflink import UNSUPPORTED

# linux/fs.h: #define FS_IOC_FIEMAP _IOWR('f', 11, struct fiemap); linux/fiemap.h for the structs and flags.
FS_IOC_FIEMAP = 0xC020660B
_FIEMAP = struct.Struct("=QQIIII")  # fm_start, fm_length, fm_flags, fm_mapped_extents, fm_extent_count, reserved
_EXTENT = struct.Struct("=QQQQQIIII")  # logical, physical, length, reserved64[2], flags, reserved[3]
FIEMAP_FLAG_SYNC = 0x1
FIEMAP_EXTENT_LAST = 0x1
FIEMAP_EXTENT_SHARED = 0x2000
_EXTENTS_PER_CALL = 256


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
