"""Checksums the client sends: ``Upload-Checksum`` on each PATCH (tus checksum extension) and the digest
of the whole file declared at creation in the ``checksum`` metadata (tusedge's whole-file verification,
advertised in ``Tus-Upload-Digest-Algorithm``; docs/checksums.md)."""

from __future__ import annotations

import asyncio
import base64
import threading
from collections.abc import Awaitable, Callable

from tusedge.checksum import ALGORITHMS
from tusedge.client.errors import ClientError
from tusedge.client.source import Source

# Strongest first among those equally cheap: SHA-256 runs in hardware (SHA-NI) on current x86 and ARM.
PREFERENCE = ("sha256", "sha1", "sha512", "md5", "crc32")
STRONG = frozenset({"sha256", "sha1", "sha512", "md5"})  # a whole-file digest with these vouches for every byte
READ_BYTES = 1024 * 1024  # per read while hashing: large enough for full speed, small for memory


def offered(header: str | None) -> list[str]:
    return [name.strip().lower() for name in (header or "").split(",") if name.strip()]


def choose(header: str | None, wanted: str, *, whole_file_verified: bool = False) -> str | None:
    """The algorithm to use: ``wanted`` is "auto" (the preferred one the server offers, or none when it
    offers none), "none", or a name the server must offer. ``whole_file_verified``: the whole file's
    cryptographic digest is checked by the server too, so "auto" takes CRC-32 per PATCH where offered —
    enough to catch a chunk damaged in transit and resend just it, at over twice SHA-256's speed on both
    sides (the strong check is the whole file's)."""
    names = offered(header)
    if wanted == "none":
        return None
    if wanted == "auto":
        if whole_file_verified and "crc32" in names:
            return "crc32"
        return next((name for name in PREFERENCE if name in names), None)
    if wanted not in names or wanted not in ALGORITHMS:
        raise ClientError(f"the server does not offer checksum algorithm {wanted!r} (it offers {names or 'none'})")
    return wanted


def digest(source: Source, algorithm: str, start: int, length: int, cancel: threading.Event | None = None) -> bytes:
    """Digest of bytes [start, start + length) of ``source``; blocking (run it in a worker thread —
    hashlib releases the GIL on large buffers). Stops with ClientError when ``cancel`` is set."""
    hasher = ALGORITHMS[algorithm]()
    done = 0
    while done < length:
        if cancel is not None and cancel.is_set():
            raise ClientError("digest cancelled")
        piece = source.read(start + done, min(READ_BYTES, length - done))
        hasher.update(piece)
        done += len(piece)
    return hasher.digest()


def digest_bytes(algorithm: str, data: bytes) -> bytes:
    hasher = ALGORITHMS[algorithm]()
    hasher.update(data)
    return hasher.digest()


def header_value(algorithm: str, value: bytes) -> str:
    """``<algorithm> <base64 digest>``, the Upload-Checksum format (and our ``checksum`` metadata)."""
    return f"{algorithm} {base64.b64encode(value).decode('ascii')}"


class ChecksumsAhead:
    """The Upload-Checksum of the chunk after the one being sent, computed meanwhile; a chunk other than
    the one prepared (after a failure the server's offset decides) is computed when asked for."""

    def __init__(self, compute: Callable[[int, int], Awaitable[str | None]]) -> None:
        self._compute = compute
        self._ahead: tuple[int, int, asyncio.Task[str | None]] | None = None

    def prepare(self, start: int, n: int) -> None:
        self.discard()
        self._ahead = (start, n, asyncio.ensure_future(self._compute(start, n)))

    async def get(self, start: int, n: int) -> str | None:
        ahead, self._ahead = self._ahead, None
        if ahead is not None and ahead[:2] == (start, n):
            return await ahead[2]
        if ahead is not None:
            ahead[2].cancel()
        return await self._compute(start, n)

    def discard(self) -> None:
        if self._ahead is not None:
            self._ahead[2].cancel()
            self._ahead = None
