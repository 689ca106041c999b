"""Where a parallel upload's parts begin and end.

Every part but the last is a whole number of alignment units (the server's ``Tusedge-Part-Alignment``,
1 MiB when it names none), so each part starts on a block boundary of the final file and a server on a
file system with reflinks (XFS, btrfs) joins them without copying a byte. Within that, the parts are as
even as they can be: they differ by at most one unit, and the last one carries the odd bytes.
"""

from __future__ import annotations

DEFAULT_ALIGNMENT = 1024 * 1024
MAX_ALIGNMENT = 1024 * 1024 * 1024


def parse_alignment(value: str | None) -> int:
    """The unit from the server's header; the default when it is absent or not a sane positive integer."""
    if value is None or not value.strip().isdigit():
        return DEFAULT_ALIGNMENT
    unit = int(value)
    return unit if 0 < unit <= MAX_ALIGNMENT else DEFAULT_ALIGNMENT


def split(size: int, count: int, unit: int = DEFAULT_ALIGNMENT) -> list[tuple[int, int]]:
    """``count`` (start, length) ranges covering ``size`` bytes, cut on multiples of ``unit``; fewer when
    the file has fewer whole units than ``count`` (a part is never smaller than one unit, except a file
    smaller than one unit, which is one part)."""
    if size < 0 or count < 1 or unit < 1:
        raise ValueError("size must not be negative, count and unit must be positive")
    units = size // unit
    count = max(1, min(count, units))
    base, extra = divmod(units, count)
    ranges, start = [], 0
    for i in range(count):
        length = (base + (1 if i < extra else 0)) * unit
        if i == count - 1:
            length = size - start
        ranges.append((start, length))
        start += length
    return ranges
