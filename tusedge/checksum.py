"""Checksum algorithms for the checksum extension: name -> incremental hasher factory.

"The Server MUST support at least the SHA1 checksum algorithm identified by sha1."
"""

from __future__ import annotations

import hashlib
import zlib
from collections.abc import Callable
from typing import Protocol

from tusedge.errors import ChecksumAlgorithmUnsupported


class Hasher(Protocol):
    """An incremental digest (hashlib's objects, :class:`Crc32`): what the body pump and the store feed."""

    def update(self, data: bytes | memoryview, /) -> None: ...

    def digest(self) -> bytes: ...


class Crc32:
    """zlib's CRC-32 (the IEEE polynomial) as a hashlib-style object; digest is 4 bytes, big-endian."""

    def __init__(self) -> None:
        self._value = 0

    def update(self, data: bytes | memoryview, /) -> None:
        self._value = zlib.crc32(data, self._value)

    def digest(self) -> bytes:
        return self._value.to_bytes(4, "big")


ALGORITHMS: dict[str, Callable[[], Hasher]] = {
    "sha1": hashlib.sha1,
    "md5": hashlib.md5,
    "sha256": hashlib.sha256,
    "sha512": hashlib.sha512,
    "crc32": Crc32,
}


def new_hasher(algorithm: str) -> Hasher:
    """checksum: "If the hash algorithm is not supported by the server, the Server MUST respond with the
    400 Bad Request status." """
    factory = ALGORITHMS.get(algorithm)
    if factory is None:
        raise ChecksumAlgorithmUnsupported(f"unsupported checksum algorithm {algorithm[:20]!r}")
    return factory()


def advertised() -> str:
    return ",".join(ALGORITHMS)
