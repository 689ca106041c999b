"""Uploading with tus: sequentially, or as N partial uploads the server joins (concatenation), resumable
across process restarts through the resume store, retried per the retry policy, with per-PATCH checksums
and a whole-file digest when the server offers them.

This module decides what to send (the parts, the final upload, what a resume may reuse) and waits for the
server's verdict; parts.py sends each part. Memory stays bounded whatever the file size: each PATCH body is
read from the source in pieces of at most 1 MiB in a worker thread, as it is sent.
"""

from __future__ import annotations

import asyncio
import functools
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, BinaryIO

import anyio.to_thread
import httpx

from tusedge.client import boundaries, checksums, compression, resource
from tusedge.client.errors import TusClientError, UploadFailed, VerificationFailed
from tusedge.client.options import DEFAULT_CHUNK_BYTES as DEFAULT_CHUNK_BYTES
from tusedge.client.options import WITH_CREATION_BYTES, node_endpoint
from tusedge.client.options import UploadOptions as UploadOptions
from tusedge.client.options import UploadResult as UploadResult
from tusedge.client.parts import Part, PartSender
from tusedge.client.progress import Progress
from tusedge.client.resume import ResumeStore, StoredUpload
from tusedge.client.retry import Attempts
from tusedge.client.source import Source, open_source
from tusedge.client.transport import make_client
from tusedge.protocol.constants import DIGEST_METADATA_KEY, Extension, Header
from tusedge.protocol.metadata import format_metadata


def poll_delay(waited_s: float) -> float:
    """Seconds until the next HEAD while the server finishes (merge, digest): a tenth of the wait so far
    (from 50 ms, at most 2 s), so the verdict is seen at most ~10 % after it is there — a doubling delay
    could leave the client idle for as long as it had waited."""
    return min(2.0, 0.05 + waited_s / 10)


async def _all(*awaitables: Awaitable[Any]) -> None:
    """Await all; on the first failure cancel the rest and raise it."""
    tasks = [asyncio.ensure_future(a) for a in awaitables]
    try:
        await asyncio.gather(*tasks)
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise


class _Run:
    """One run of one upload."""

    def __init__(
        self,
        source: Source,
        endpoint: str,
        options: UploadOptions,
        client: httpx.AsyncClient,
        store: ResumeStore | None,
        progress: Progress,
        new_client: Callable[[], httpx.AsyncClient] | None = None,
    ) -> None:
        self.source, self.endpoint, self.options = source, endpoint, options
        self.new_client = new_client
        # The resume store knows the endpoint without its query: a pre-signed URL signed again (a new
        # expiry) still names the same uploads.
        self.store_endpoint = str(httpx.URL(endpoint).copy_with(query=None))
        self.client, self.store, self.progress = client, store, progress
        self.attempts = Attempts(options.retry)
        self.sender = PartSender(source, options, progress, self.attempts)
        self.sender.clients = [client]
        self.tally = self.sender.tally
        self.with_creation = False
        self._cancel_digest = threading.Event()
        self.declare_early = False

    # --- the whole upload ---------------------------------------------------------------------------
    async def run(self) -> UploadResult:
        offer = await self.attempts.run(lambda: resource.options(self.client, self.endpoint))
        size = self.source.size
        parallel = self.options.parallel if Extension.CONCATENATION in offer.extensions else 1
        # The final upload is declared while its parts are still being sent, so the server joins each part
        # as it completes and the final is ready moments after the last byte (tusedge.server.finishing).
        self.declare_early = Extension.CONCATENATION_UNFINISHED in offer.extensions
        # Parts on multiples of the server's unit, so it can join them by sharing blocks (tusedge.client.boundaries).
        ranges = boundaries.split(size, parallel, offer.part_alignment) if parallel > 1 else [(0, size)]
        self.with_creation = Extension.CREATION_WITH_UPLOAD in offer.extensions
        takes_zstd = compression.ENCODING in offer.content_encodings
        mode = self.options.compress
        if await anyio.to_thread.run_sync(compression.should_compress, mode, takes_zstd, self.source):
            self.sender.encoding = compression.ENCODING
        digest_algorithm = checksums.choose(offer.digest_algorithms, "auto") if self.options.digest else None
        if DIGEST_METADATA_KEY in self.options.metadata:
            digest_algorithm = None  # the caller declared it
        offered = offer.checksum_algorithms if Extension.CHECKSUM in offer.extensions else None
        whole_file_verified = digest_algorithm in checksums.STRONG
        self.sender.patch_algorithm = checksums.choose(
            offered, self.options.checksum, whole_file_verified=whole_file_verified
        )

        key = await anyio.to_thread.run_sync(self.source.fingerprint) if self.store is not None else None
        if self.store is None or key is None:
            return await self._upload(None, size, ranges, digest_algorithm, offer.http_version)
        with self.store.claim(key, self.store_endpoint):
            return await self._upload(key, size, ranges, digest_algorithm, offer.http_version)

    async def _upload(
        self,
        key: str | None,
        size: int,
        ranges: list[tuple[int, int]],
        digest_algorithm: str | None,
        http_version: str,
    ) -> UploadResult:
        stored = await self._recall(key)
        final_url = await self._existing_final(stored)
        parts: list[Part] = []
        if final_url is not None and stored is not None:
            # Declared early by a run that stopped before its parts were all in: their rest goes now. Parts
            # the server no longer has were joined into the final and retired (only once it is complete).
            parts = await self._resumable_parts(stored)
            if parts:
                self.tally.resumed_from = 0
                await self._send_parts(parts, digest_algorithm, key, final_url)
            elif not await self._complete(final_url):
                # A part is gone (deleted, expired) before the final got its bytes: it can never complete.
                final_url = stored = None
                self.tally.resumed_from = 0
                await self._forget(key)
        if final_url is None:
            parts = await self._resumable_parts(stored) if stored else []
            if not parts:
                digest = None
                if digest_algorithm and len(ranges) == 1:  # declared at creation, so computed before
                    self.progress.phase = f"computing the {digest_algorithm} digest of {self.source.name}"
                    digest = await self._whole_digest(digest_algorithm)
                parts = await self._create_parts(ranges, digest_algorithm, digest)
                await self._record(key, StoredUpload([p.url for p in parts]))
            final_url = await self._send_parts(parts, digest_algorithm, key)
        self.progress.phase = "waiting for the server to finish the upload"
        status = await self._finished(final_url, joined=len(parts) != 1)
        await self._forget(key)
        if not parts:  # the final upload was created by an earlier run
            self.progress.start(size, 1)
            self.progress.resume(0, size)
        self.progress.phase = "done"
        return UploadResult(
            url=final_url,
            size=size,
            parts=max(1, len(parts)),
            resumed_from=self.tally.resumed_from,
            bytes_sent=self.tally.bytes_sent,
            retries=self.attempts.retries,
            checksum=self.sender.patch_algorithm,
            digest_status=status,
            http_version=http_version,
            compression=self.sender.encoding,
            wire_bytes=self.tally.wire_bytes if self.sender.encoding else self.tally.bytes_sent,
        )

    # The resume store is file I/O: worker threads. Nothing to do when the upload is not resumable.
    async def _recall(self, key: str | None) -> StoredUpload | None:
        if self.store is None or key is None:
            return None
        return await anyio.to_thread.run_sync(self.store.get, key, self.store_endpoint)

    async def _record(self, key: str | None, upload: StoredUpload) -> None:
        if self.store is not None and key is not None:
            await anyio.to_thread.run_sync(self.store.put, key, self.store_endpoint, upload)

    async def _forget(self, key: str | None) -> None:
        if self.store is not None and key is not None:
            await anyio.to_thread.run_sync(self.store.remove, key, self.store_endpoint)

    async def _send_parts(
        self, parts: list[Part], digest_algorithm: str | None, key: str | None, final_url: str | None = None
    ) -> str:
        """Send every part; for a parallel upload create the final upload (declaring the whole-file digest,
        computed in the background meanwhile) unless ``final_url`` names it already; return the finished
        upload's URL. Where the server offers concatenation-unfinished the final is created as soon as the
        digest is known, while the parts are still going, and recorded for a resume."""
        joined = len(parts) > 1
        declare = joined and final_url is None
        digest_task = (
            asyncio.ensure_future(self._whole_digest(digest_algorithm)) if declare and digest_algorithm else None
        )

        async def declare_final() -> str:
            digest = await digest_task if digest_task is not None else None
            url = await self._create_final(parts, digest_algorithm, digest)
            await self._record(key, StoredUpload([p.url for p in parts], url))
            return url

        early = asyncio.ensure_future(declare_final()) if declare and self.declare_early else None
        self.progress.start(self.source.size, len(parts))
        extra = self._spread(len(parts))
        try:
            await _all(*(self.sender.send(part) for part in parts), *([early] if early is not None else []))
            if not joined:
                return parts[0].url
            self.progress.phase = f"joining {len(parts)} parts"
            if early is not None:
                return early.result()
            if final_url is not None:
                return final_url
            return await declare_final()
        finally:
            self._cancel_digest.set()
            if early is not None and not early.done():
                early.cancel()
            if digest_task is not None and not digest_task.done():
                digest_task.cancel()
            for spare in extra:
                await spare.aclose()
            self.sender.clients = [self.client]

    def _spread(self, parts: int) -> list[httpx.AsyncClient]:
        """HTTP/2 and /3: more clients (connections) for the parts, as ``connections`` says; return the new ones."""
        if self.new_client is None or self.options.http == "1.1" or parts < 2:
            return []
        wanted = min(parts, self.options.connections or parts)
        extra = [self.new_client() for _ in range(wanted - 1)]
        self.sender.clients = [self.client, *extra]
        return extra

    def _metadata(self, digest_algorithm: str | None, digest: bytes | None) -> str:
        meta = {"filename": self.source.name, **self.options.metadata}
        if digest_algorithm and digest is not None:
            meta[DIGEST_METADATA_KEY] = checksums.header_value(digest_algorithm, digest)
        return format_metadata(meta)

    async def _whole_digest(self, algorithm: str) -> bytes:
        return await anyio.to_thread.run_sync(
            checksums.digest, self.source, algorithm, 0, self.source.size, self._cancel_digest, abandon_on_cancel=True
        )

    async def _create_parts(
        self, ranges: list[tuple[int, int]], digest_algorithm: str | None, digest: bytes | None
    ) -> list[Part]:
        parts: list[Part] = []
        endpoint = self.endpoint
        for index, (start, length) in enumerate(ranges):
            headers = {Header.UPLOAD_LENGTH.value: str(length)}
            body = None
            if len(ranges) > 1:
                headers[Header.UPLOAD_CONCAT.value] = "partial"
            else:
                headers[Header.UPLOAD_METADATA.value] = self._metadata(digest_algorithm, digest)
                if self.with_creation and 0 < length <= WITH_CREATION_BYTES:
                    body = await anyio.to_thread.run_sync(self.source.read, 0, length)
                    checksum = await self.sender.chunk_checksum(0, length)
                    if checksum is not None:
                        headers[Header.UPLOAD_CHECKSUM.value] = checksum
            create = functools.partial(resource.create, self.client, endpoint, headers, body)
            url = await self.attempts.run(create)
            endpoint = node_endpoint(self.endpoint, url)  # the other parts: on the first one's node
            sent = len(body) if body is not None else 0
            self.tally.bytes_sent += sent
            parts.append(Part(index, url, start, length, sent))
        return parts

    async def _create_final(self, parts: list[Part], digest_algorithm: str | None, digest: bytes | None) -> str:
        headers = {
            Header.UPLOAD_CONCAT.value: "final;" + " ".join(p.url for p in parts),
            Header.UPLOAD_METADATA.value: self._metadata(digest_algorithm, digest),
        }
        endpoint = node_endpoint(self.endpoint, parts[0].url)  # on the node that holds the parts
        return await self.attempts.run(lambda: resource.create(self.client, endpoint, headers))

    async def _existing_final(self, stored: StoredUpload | None) -> str | None:
        """A stored final upload the server still has (a run that died after creating it)."""
        if stored is None or stored.final is None:
            return None
        try:
            await self.attempts.run(functools.partial(resource.head, self.client, stored.final))
        except TusClientError:  # gone (404/410...): start again
            return None
        self.tally.resumed_from = self.source.size
        return stored.final

    async def _resumable_parts(self, stored: StoredUpload) -> list[Part]:
        """The stored parts, if the server still has them all and their lengths, one after another, cover
        this file exactly (the lengths decide the ranges: whichever split an earlier run chose); else none."""
        parts: list[Part] = []
        start = 0
        for index, url in enumerate(stored.parts):
            try:
                state = await self.attempts.run(functools.partial(resource.head, self.client, url))
            except TusClientError:  # gone (404/410...): start again
                return []
            if state.length is None:
                return []
            parts.append(Part(index, url, start, state.length))
            start += state.length
        return parts if start == self.source.size else []

    async def _finished(self, url: str, *, joined: bool) -> str | None:
        """Wait (bounded by ``verify_wait_s``) while a joined upload is still being merged (no Upload-Offset
        yet) or the server's verdict on the whole-file digest is pending; raise on a mismatch."""
        loop = asyncio.get_running_loop()
        started = loop.time()
        deadline = started + self.options.verify_wait_s
        while True:
            state = await self.attempts.run(functools.partial(resource.head, self.client, url))
            busy = (joined and state.offset is None) or state.checksum_status == "pending"
            if not busy or loop.time() >= deadline:
                break
            await asyncio.sleep(poll_delay(loop.time() - started))
        if state.checksum_status == "mismatch":
            raise VerificationFailed(f"{url}: the server's digest of the upload differs from this file's")
        if state.checksum_status == "failed":
            raise UploadFailed(f"{url}: the server failed the upload (a partial upload of it is gone)")
        return state.checksum_status

    async def _complete(self, url: str) -> bool:
        """Whether the server has all of a final upload's bytes (HEAD shows a final's offset only then)."""
        state = await self.attempts.run(functools.partial(resource.head, self.client, url))
        return state.offset is not None


async def upload(
    source: str | Path | BinaryIO | Source,
    endpoint: str,
    options: UploadOptions | None = None,
    *,
    store: ResumeStore | None = None,
    client: httpx.AsyncClient | None = None,
    progress: Progress | None = None,
) -> UploadResult:
    """Upload ``source`` (a path, a seekable binary file object, or a Source) to the tus creation URL
    ``endpoint``; return the finished upload's URL and what this run did.

    ``store`` overrides ``options.store_path``; ``client`` replaces the transport the options describe
    (its headers and TLS settings are then the caller's); ``progress`` is updated as bytes go out.
    """
    options = options or UploadOptions()
    src = open_source(source)
    own_client = client is None

    def new_client() -> httpx.AsyncClient:
        return make_client(options.http, verify=options.verify, headers=options.headers, timeout_s=options.timeout_s)

    http = client or new_client()
    try:
        if options.resume and store is None:
            store = await anyio.to_thread.run_sync(ResumeStore, options.store_path)
        resumable = store if options.resume else None
        run = _Run(src, endpoint, options, http, resumable, progress or Progress(), new_client if own_client else None)
        return await run.run()
    finally:
        if own_client:
            await http.aclose()
        if src is not source:
            src.close()


def upload_sync(
    source: str | Path | BinaryIO | Source,
    endpoint: str,
    options: UploadOptions | None = None,
    *,
    store: ResumeStore | None = None,
    progress: Progress | None = None,
) -> UploadResult:
    """:func:`upload` for code that is not async."""
    return asyncio.run(upload(source, endpoint, options, store=store, progress=progress))
