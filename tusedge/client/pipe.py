"""Uploading a stream of unknown length — a pipe, stdin (``tar c dir | tusedge upload - URL``) — with
creation-defer-length: the upload is created without a length, sent chunk by chunk, and its length is
declared with the last chunk.

A pipe cannot be read twice, so each chunk stays in memory (``chunk_size`` bytes) until the server has
acknowledged it: after a failure the client HEADs the offset and sends again from the buffered bytes.
Within one run that survives dropped connections and a restarted server; across runs it cannot resume
(the bytes already read from the pipe are gone) and it does not use the resume store. Nor can it declare
a whole-file digest at creation; each PATCH still carries Upload-Checksum.
"""

from __future__ import annotations

import asyncio
import functools
from typing import BinaryIO

import anyio.to_thread
import httpx

from tusedge.client import checksums, resource
from tusedge.client.errors import ClientError
from tusedge.client.progress import Progress
from tusedge.client.retry import RETRYABLE, Attempts
from tusedge.client.transport import make_client
from tusedge.client.uploader import UploadOptions, UploadResult
from tusedge.protocol.constants import Extension, Header
from tusedge.protocol.metadata import format_metadata


def _read_chunk(stream: BinaryIO, size: int) -> bytes:
    """Up to ``size`` bytes; fewer only at the end of the stream (pipes return short reads)."""
    parts, got = [], 0
    while got < size:
        piece = stream.read(size - got)
        if not piece:
            break
        parts.append(piece)
        got += len(piece)
    return b"".join(parts)


async def upload_stream(
    stream: BinaryIO,
    endpoint: str,
    options: UploadOptions | None = None,
    *,
    name: str = "stdin",
    client: httpx.AsyncClient | None = None,
    progress: Progress | None = None,
) -> UploadResult:
    """Upload everything ``stream`` yields until its end to the tus creation URL ``endpoint``."""
    options = options or UploadOptions()
    own_client = client is None
    http = client or make_client(
        options.http, verify=options.verify, headers=options.headers, timeout_s=options.timeout_s
    )
    try:
        return await _StreamRun(stream, endpoint, options, http, progress or Progress()).run(name)
    finally:
        if own_client:
            await http.aclose()


class _StreamRun:
    def __init__(
        self, stream: BinaryIO, endpoint: str, options: UploadOptions, client: httpx.AsyncClient, progress: Progress
    ) -> None:
        self.stream, self.endpoint, self.options = stream, endpoint, options
        self.client, self.progress = client, progress
        self.attempts = Attempts(options.retry)
        self.algorithm: str | None = None
        self.sent = 0

    async def run(self, name: str) -> UploadResult:
        offer = await self.attempts.run(functools.partial(resource.options, self.client, self.endpoint))
        if Extension.CREATION_DEFER_LENGTH not in offer.extensions:
            raise ClientError("the server does not offer creation-defer-length, so it cannot take a stream")
        offered = offer.checksum_algorithms if Extension.CHECKSUM in offer.extensions else None
        self.algorithm = checksums.choose(offered, self.options.checksum)
        headers = {
            Header.UPLOAD_DEFER_LENGTH.value: "1",
            Header.UPLOAD_METADATA.value: format_metadata({"filename": name, **self.options.metadata}),
        }
        url = await self.attempts.run(functools.partial(resource.create, self.client, self.endpoint, headers))
        self.progress.start(0, 1)
        start = 0
        chunk = await self._read()
        while True:
            following = await self._read() if chunk else b""
            last = not following
            self.progress.total = start + len(chunk) + len(following)
            await self._send(url, start, chunk, last)
            start += len(chunk)
            if last:
                break
            chunk = following
        self.progress.phase = "done"
        return UploadResult(
            url=url,
            size=start,
            parts=1,
            resumed_from=0,
            bytes_sent=self.sent,
            retries=self.attempts.retries,
            checksum=self.algorithm,
            digest_status=None,
            http_version=offer.http_version,
        )

    async def _read(self) -> bytes:
        return await anyio.to_thread.run_sync(_read_chunk, self.stream, self.options.chunk_size)

    async def _send(self, url: str, start: int, chunk: bytes, last: bool) -> None:
        """PATCH ``chunk`` at ``start`` (declaring the length with the last one); after a failure HEAD and
        send again from the server's offset, out of the buffered chunk."""
        end = start + len(chunk)
        offset = start
        while True:
            body = chunk[offset - start :]
            checksum = await self._checksum(body)
            length = end if last else None
            try:
                offset = await resource.patch(self.client, url, offset, len(body), body, checksum, length)
            except RETRYABLE as exc:
                await self.attempts.failed(exc)
                state = await self.attempts.run(functools.partial(resource.head, self.client, url))
                offset = state.offset or 0
                if not start <= offset <= end:
                    raise ClientError(f"the server reports offset {offset}, outside the bytes still held") from exc
                self.progress.set(0, offset)
                continue
            self.attempts.succeeded()
            self.sent += len(body)
            self.progress.set(0, offset)
            if offset >= end:
                return

    async def _checksum(self, body: bytes) -> str | None:
        if self.algorithm is None or not body:
            return None
        value = await anyio.to_thread.run_sync(checksums.digest_bytes, self.algorithm, body)
        return checksums.header_value(self.algorithm, value)


def upload_stream_sync(stream: BinaryIO, endpoint: str, options: UploadOptions | None = None) -> UploadResult:
    """:func:`upload_stream` for code that is not async."""
    return asyncio.run(upload_stream(stream, endpoint, options))
