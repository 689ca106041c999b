"""A file's fingerprint for resuming: path, size, modification time and a hash of its head and tail.

A file that changed in any of these is a different file, and is never resumed onto an old upload. Hashing
only the first and last MiB keeps it cheap for 20 GB files; size and mtime catch most changes in between.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

EDGE_BYTES = 1024 * 1024


def fingerprint(path: str | Path) -> str:
    path = Path(path).resolve()
    stat = path.stat()
    digest = hashlib.sha256()
    digest.update(f"{path}\0{stat.st_size}\0{stat.st_mtime_ns}\0".encode())
    with path.open("rb") as fh:
        digest.update(fh.read(EDGE_BYTES))
        if stat.st_size > EDGE_BYTES:
            fh.seek(max(EDGE_BYTES, stat.st_size - EDGE_BYTES), os.SEEK_SET)
            digest.update(fh.read(EDGE_BYTES))
    return digest.hexdigest()
