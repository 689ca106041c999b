"""Uploading a file with tus: sequential, or as N partial uploads joined by the server (concatenation),
resumable across process restarts through the resume store, with retries per the retry policy.

Memory stays bounded whatever the file size: each PATCH body is read from the file in 1 MiB pieces with
``os.pread`` in a worker thread, as it is sent.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import anyio.to_thread
import httpx

from tusedge.client import resource
from tusedge.client.fingerprint import fingerprint
from tusedge.client.resume import ResumeStore
from tusedge.client.retry import RetryPolicy, is_retryable_status
from tusedge.protocol.constants import Extension, Header
from tusedge.protocol.metadata import format_metadata

PIECE_BYTES = 1024 * 1024
DEFAULT_CHUNK_BYTES = 64 * 1024 * 1024


@dataclass
class UploadResult:
    url: str
    size: int
    resumed_from: int  # bytes the server already had when this run started
    bytes_sent: int  # body bytes this run sent (including bytes of PATCHes that failed and were retried)


async def _read_pieces(path: Path, offset: int, length: int) -> AsyncIterator[bytes]:
    fd = os.open(path, os.O_RDONLY)
    try:
        done = 0
        while done < length:
            piece = await anyio.to_thread.run_sync(os.pread, fd, min(PIECE_BYTES, length - done), offset + done)
            if not piece:
                raise OSError(f"{path} ended early")
            done += len(piece)
            yield piece
    finally:
        os.close(fd)


class _Part:
    """One upload URL covering bytes [start, start + length) of the file."""

    def __init__(self, url: str, start: int, length: int) -> None:
        self.url, self.start, self.length = url, start, length
        self.sent = 0


async def _send(client: httpx.AsyncClient, path: Path, part: _Part, chunk: int, retry: RetryPolicy) -> None:
    """PATCH the part to its end, re-HEADing and continuing from the server's offset after a failure."""
    offset = (await resource.head(client, part.url)).offset
    attempt, first_failure = 0, 0.0
    while offset < part.length:
        n = min(chunk, part.length - offset)
        try:
            offset = await resource.patch(client, part.url, offset, n, _read_pieces(path, part.start + offset, n))
            part.sent += n
            attempt = 0
        except (httpx.TransportError, resource.TusClientError) as exc:
            if isinstance(exc, resource.TusClientError) and not is_retryable_status(exc.status):
                raise
            first_failure = first_failure or time.monotonic()
            delay = retry.delay(attempt, time.monotonic() - first_failure)
            if delay is None:
                raise
            attempt += 1
            await asyncio.sleep(delay)
            offset = await _head_with_retry(client, part.url, retry)


async def _head_with_retry(client: httpx.AsyncClient, url: str, retry: RetryPolicy) -> int:
    attempt, started = 0, time.monotonic()
    while True:
        try:
            return (await resource.head(client, url)).offset
        except (httpx.TransportError, resource.TusClientError) as exc:
            if isinstance(exc, resource.TusClientError) and not is_retryable_status(exc.status):
                raise
            delay = retry.delay(attempt, time.monotonic() - started)
            if delay is None:
                raise
            attempt += 1
            await asyncio.sleep(delay)


async def _resumable_parts(client: httpx.AsyncClient, urls: list[str], size: int) -> list[_Part] | None:
    """The stored parts (their number decides the ranges), if the server still has them with the
    lengths this file needs."""
    ranges = _ranges(size, len(urls))
    parts = []
    for url, (start, length) in zip(urls, ranges, strict=True):
        try:
            state = await resource.head(client, url)
        except (httpx.HTTPError, resource.TusClientError):
            return None
        if state.length != length:
            return None
        parts.append(_Part(url, start, length))
    return parts


def _ranges(size: int, count: int) -> list[tuple[int, int]]:
    part = size // count
    return [(i * part, part if i < count - 1 else size - part * (count - 1)) for i in range(count)]


async def upload(
    path: str | Path,
    endpoint: str,
    *,
    parallel: int = 1,
    chunk_size: int = DEFAULT_CHUNK_BYTES,
    metadata: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
    resume: bool = True,
    store: ResumeStore | None = None,
    retry: RetryPolicy | None = None,
    client: httpx.AsyncClient | None = None,
) -> UploadResult:
    """Upload ``path`` to the tus creation URL ``endpoint``; return the final upload's URL and counts."""
    path = Path(path)
    size = path.stat().st_size
    retry = retry or RetryPolicy()
    meta = {"filename": path.name, **(metadata or {})}
    own_client = client is None
    client = client or httpx.AsyncClient(headers=headers, timeout=httpx.Timeout(60, read=600))
    try:
        extensions = (await resource.options(client, endpoint)).get(Header.TUS_EXTENSION.lower(), "")
        if Extension.CONCATENATION not in [e.strip() for e in extensions.split(",")] or size < parallel:
            parallel = 1
        key = fingerprint(path) if resume else ""
        store = store or (ResumeStore() if resume else None)
        urls = store.get(key, endpoint) if store is not None else None
        parts = await _resumable_parts(client, urls, size) if urls else None
        if parts is None:
            concat = {"Upload-Concat": "partial"} if parallel > 1 else {}
            created = []
            for start, length in _ranges(size, parallel):
                create_headers = {"Upload-Length": str(length), **concat}
                if parallel == 1:
                    create_headers["Upload-Metadata"] = format_metadata(meta)
                created.append(_Part(await resource.create(client, endpoint, create_headers), start, length))
            parts = created
            if store is not None:
                store.put(key, endpoint, [p.url for p in parts])
        resumed_from = 0
        for part in parts:
            resumed_from += (await resource.head(client, part.url)).offset
        await asyncio.gather(*(_send(client, path, p, chunk_size, retry) for p in parts))
        if len(parts) > 1:
            final_headers = {
                "Upload-Concat": "final;" + " ".join(p.url for p in parts),
                "Upload-Metadata": format_metadata(meta),
            }
            url = await resource.create(client, endpoint, final_headers)
        else:
            url = parts[0].url
        if store is not None:
            store.remove(key, endpoint)
        return UploadResult(url, size, resumed_from, sum(p.sent for p in parts))
    finally:
        if own_client:
            await client.aclose()


def upload_sync(path: str | Path, endpoint: str, **options: object) -> UploadResult:
    """:func:`upload` for code that is not async."""
    return asyncio.run(upload(path, endpoint, **options))  # type: ignore[arg-type]
