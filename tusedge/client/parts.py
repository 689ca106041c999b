"""Sending one part of an upload (a whole upload is one part): PATCH after PATCH to its end, resuming from
the server's offset after a failure, each body read from the source in pieces of at most 1 MiB in a worker
thread as it is sent, throttled by the bandwidth cap, zstd-compressed when the server takes it, and with the
next chunk's checksum computed while the current chunk goes out.

The uploader (uploader.py) decides what the parts are and what the server offers; this module only sends.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import anyio.to_thread
import httpx

from tusedge.client import checksums, compression, resource
from tusedge.client.checksums import ChecksumsAhead
from tusedge.client.options import UploadOptions
from tusedge.client.progress import Progress
from tusedge.client.retry import RETRYABLE, Attempts
from tusedge.client.source import Source
from tusedge.tokenbucket import TokenBucket

PIECE_BYTES = 1024 * 1024


@dataclass
class Part:
    index: int
    url: str
    start: int
    length: int
    sent_on_creation: int = 0  # bytes this run sent in the POST (creation-with-upload)


@dataclass
class Tally:
    """What a run has done so far, for its UploadResult."""

    bytes_sent: int = 0  # of the file, as read from the source
    wire_bytes: int = 0  # compressed bytes sent, when the bodies are compressed
    resumed_from: int = 0  # bytes the server already had when the run began


class PartSender:
    """Sends parts over ``clients`` (part ``i`` over ``clients[i % len(clients)]``), with per-PATCH
    checksums of ``patch_algorithm`` and bodies in ``encoding`` when those are set."""

    def __init__(self, source: Source, options: UploadOptions, progress: Progress, attempts: Attempts) -> None:
        self.source, self.options, self.progress = source, options, progress
        self.attempts = attempts  # the run's: each part's retries are added to it
        self.tally = Tally()
        self.bucket = TokenBucket(options.rate_limit) if options.rate_limit else None
        self.patch_algorithm: str | None = None
        self.encoding: str | None = None
        self.clients: list[httpx.AsyncClient] = []

    async def send(self, part: Part) -> None:
        """PATCH the part to its end; after a failure, HEAD and continue from the server's offset. The
        next chunk's checksum is computed while the current chunk is sent."""
        attempts = Attempts(self.options.retry)
        checksums_ahead = ChecksumsAhead(self.chunk_checksum)
        try:
            offset = await self._offset(part, attempts)
            self.tally.resumed_from += max(0, offset - part.sent_on_creation)
            self.progress.resume(part.index, offset)
            while offset < part.length:
                n = min(self.options.chunk_size, part.length - offset)
                following = offset + n
                try:
                    checksum = await checksums_ahead.get(part.start + offset, n)
                    if following < part.length:
                        checksums_ahead.prepare(
                            part.start + following, min(self.options.chunk_size, part.length - following)
                        )
                    body = self._body(part, offset, n)
                    if self.encoding is not None:
                        body = self._counted(compression.compressed(body, n))
                    offset = await resource.patch(
                        self._client_of(part), part.url, offset, n, body, checksum, encoding=self.encoding
                    )
                except RETRYABLE as exc:
                    await attempts.failed(exc)
                    offset = await self._offset(part, attempts)
                    continue
                attempts.succeeded()
                self.progress.set(part.index, offset)
        finally:
            checksums_ahead.discard()
            self.attempts.retries += attempts.retries

    async def chunk_checksum(self, start: int, n: int) -> str | None:
        """The Upload-Checksum value of the file's bytes ``start`` to ``start + n``; None without checksums."""
        if self.patch_algorithm is None:
            return None
        value = await anyio.to_thread.run_sync(checksums.digest, self.source, self.patch_algorithm, start, n)
        return checksums.header_value(self.patch_algorithm, value)

    async def _offset(self, part: Part, attempts: Attempts) -> int:
        state = await attempts.run(lambda: resource.head(self._client_of(part), part.url))
        offset = state.offset or 0
        self.progress.set(part.index, offset)
        return offset

    def _client_of(self, part: Part) -> httpx.AsyncClient:
        return self.clients[part.index % len(self.clients)]

    async def _body(self, part: Part, offset: int, n: int) -> AsyncIterator[bytes]:
        piece = self.bucket.piece_size(PIECE_BYTES) if self.bucket else PIECE_BYTES
        done = 0
        while done < n:
            k = min(piece, n - done)
            if self.bucket is not None and self.encoding is None:
                await self.bucket.take(k)
            data = await anyio.to_thread.run_sync(self.source.read, part.start + offset + done, k)
            done += k
            self.tally.bytes_sent += k
            self.progress.advance(part.index, k)
            yield data

    async def _counted(self, body: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        """Compressed bytes going out; the bandwidth cap counts these (what the link carries)."""
        async for data in body:
            if self.bucket is not None:
                await self.bucket.take(len(data))
            self.tally.wire_bytes += len(data)
            yield data
