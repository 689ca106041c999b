"""What an upload reads from: a file by path (``os.pread`` on its own descriptor, so parallel parts
never share a file position), or any seekable binary file object (reads serialised by a lock).

Reads are blocking; the uploader calls them in worker threads.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import BinaryIO

from tusedge.client.errors import SourceChanged
from tusedge.client.fingerprint import fingerprint


class Source:
    """Bytes [offset, offset + n) of something of a known ``size``."""

    name: str
    size: int

    def read(self, offset: int, n: int) -> bytes:
        raise NotImplementedError

    def fingerprint(self) -> str | None:
        """A key for the resume store, or None when this source cannot be recognised again."""
        return None

    def close(self) -> None:
        """Release what the source holds."""


class FileSource(Source):
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.name = self.path.name
        self._fd = os.open(self.path, os.O_RDONLY)
        self.size = os.fstat(self._fd).st_size

    def read(self, offset: int, n: int) -> bytes:
        data = os.pread(self._fd, n, offset)
        if len(data) < n:
            # pread returns fewer bytes only at the end of the file: the file shrank under us.
            more = os.pread(self._fd, n - len(data), offset + len(data)) if data else b""
            if not more:
                raise SourceChanged(f"{self.path} is shorter than when the upload started ({self.size} bytes)")
            data += more
        return data

    def fingerprint(self) -> str:
        return fingerprint(self.path)

    def close(self) -> None:
        os.close(self._fd)


class StreamSource(Source):
    """A seekable binary file object (``open(..., "rb")``, ``io.BytesIO``...). Not resumable across
    processes unless the caller names a ``key`` that identifies the content."""

    def __init__(self, stream: BinaryIO, name: str = "upload", key: str | None = None) -> None:
        self._stream = stream
        self._lock = threading.Lock()
        self._key = key
        self.name = name
        self.size = stream.seek(0, os.SEEK_END)

    def read(self, offset: int, n: int) -> bytes:
        with self._lock:
            self._stream.seek(offset)
            data = self._stream.read(n)
        if len(data) != n:
            raise SourceChanged(f"{self.name} is shorter than when the upload started ({self.size} bytes)")
        return data

    def fingerprint(self) -> str | None:
        return self._key


def open_source(source: str | Path | BinaryIO | Source) -> Source:
    if isinstance(source, Source):
        return source
    if isinstance(source, (str, Path)):
        return FileSource(source)
    return StreamSource(source, name=Path(str(getattr(source, "name", "upload"))).name)
