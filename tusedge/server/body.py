"""Streams a request body into an upload file in bounded memory.

Chunks from the ASGI server (often 64 KiB) are gathered into batches of ``buffer_bytes`` and written with
one ``pwritev`` in a worker thread while the next batch is received, so at most two batches are held.
Checkpoints bound what a crash of the process loses: once ``checkpoint_bytes`` have arrived since the last
one *and* ``checkpoint_s`` have passed, everything received is written and synced and the caller commits the
offset, so a ``kill -9`` re-sends at most about max(``checkpoint_s`` of the body, ``checkpoint_bytes``)
(docs/durability.md). A dropped connection
is not an error here: what arrived is written and synced and the caller decides what to commit (tusd's
``body_reader.go`` does the same). A lock holder that is asked to give way stops reading once its client
has been quiet for ``stale_after_s``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from enum import Enum

from starlette.requests import ClientDisconnect

from tusedge.checksum import Hasher
from tusedge.errors import (
    ContentDecodingFailed,
    ExceedsUploadLength,
    IncompleteRequest,
    RequestTimeout,
    TusError,
    UnexpectedBody,
)
from tusedge.locking.base import Lock
from tusedge.storage.base import Writer

WATCH_INTERVAL_S = 0.2


# A request that takes no body (DELETE) may still carry a little, which we read and ignore.
IGNORED_BODY_LIMIT = 64 * 1024


async def receive_whole(chunks: AsyncIterator[bytes], limit: int = IGNORED_BODY_LIMIT) -> None:
    """Read the body of a request that does not use it, to its end: such a request acts only once it has
    arrived whole, so one cut off (or whose framing the HTTP layer refused with a 400) changes nothing."""
    received = 0
    try:
        async for chunk in chunks:
            received += len(chunk)
            if received > limit:
                raise UnexpectedBody(f"this request takes no body (got more than {limit} bytes)")
    except ClientDisconnect:
        raise IncompleteRequest() from None


class Ending(Enum):
    COMPLETE = "complete"  # the body ended normally
    DISCONNECTED = "disconnected"  # the client went away mid-body
    INTERRUPTED = "interrupted"  # another request took the lock over
    TOO_SLOW = "too slow"  # the body fell below --min-body-rate; ``error`` is the 408
    FAILED = "failed"  # a write failed (e.g. disk full); ``error`` says why


@dataclass(slots=True)
class BodyResult:
    end: int  # offset after the last byte written and synced
    ending: Ending
    error: TusError | None = None


@dataclass(slots=True)
class BodyPump:
    writer: Writer
    start: int
    room: int | None  # bytes the upload may still take; None: unbounded
    buffer_bytes: int
    hasher: Hasher | None = None
    checkpoint: Callable[[int], Awaitable[None]] | None = None  # commit an offset whose bytes are synced
    checkpoint_bytes: int = 0  # 0: no checkpoints
    checkpoint_s: float = 0.0
    on_bytes: Callable[[int], None] | None = None  # told the size of every chunk as it arrives (a metric)
    lock: Lock | None = None
    stale_after_s: float = 2.0
    length: int | None = None  # the upload's length: a body ending there has the file cut there (trimmed)

    _batch: list[bytes] = field(default_factory=list)
    _batch_size: int = 0
    _received: int = 0
    _written: int = 0  # bytes handed to the disk and finished
    _synced: int = 0
    _in_flight: asyncio.Task[int] | None = None
    _last_activity: float = 0.0
    _last_checkpoint: float = 0.0
    _interrupted: bool = False
    _receiving: bool = False

    async def run(self, chunks: AsyncIterator[bytes]) -> BodyResult:
        self._last_activity = self._last_checkpoint = time.monotonic()
        ending = Ending.COMPLETE
        error: TusError | None = None
        slow: RequestTimeout | None = None
        try:
            # The lock watcher is a plain task that cancels this one, only while it is receiving (an anyio
            # task group here cost about a quarter of the app's CPU for a small PATCH: benchmarks.app_cpu).
            me = asyncio.current_task()
            watcher = None
            if self.lock is not None and me is not None:
                watcher = asyncio.get_running_loop().create_task(self._watch_lock(me))
            self._receiving = True
            try:
                await self._receive(chunks)
            except ClientDisconnect:
                ending = Ending.DISCONNECTED
            except RequestTimeout as exc:  # too slow: what arrived is kept, as after a disconnect
                ending, slow = Ending.TOO_SLOW, exc
            except TusError as exc:
                error = exc
            except asyncio.CancelledError:
                # Ours (the holder was asked to give way): the body ends here. Anyone else's goes on.
                if not self._interrupted or me is None or me.uncancel() > 0:
                    raise
            finally:
                self._receiving = False
                if watcher is not None:
                    watcher.cancel()
            if error is not None:
                raise error
            if self._interrupted:
                ending = Ending.INTERRUPTED
            await self._finish()
            if ending is Ending.TOO_SLOW:
                error = slow
        except (ExceedsUploadLength, ContentDecodingFailed):  # the body is refused: nothing of it counts
            await self._drain(ignore_errors=True)
            raise
        except TusError as exc:  # a write or sync failed: keep what is safely on disk
            await self._drain(ignore_errors=True)
            ending, error = Ending.FAILED, exc
            try:
                await self.writer.sync()
                self._synced = self._written
            except TusError:
                pass
        return BodyResult(self.start + self._synced, ending, error)

    async def _receive(self, chunks: AsyncIterator[bytes]) -> None:
        async for chunk in chunks:
            if not chunk:
                continue
            self._last_activity = time.monotonic()
            if self.room is not None and self._received + len(chunk) > self.room:
                # core.patch-beyond-length: never store bytes past Upload-Length.
                raise ExceedsUploadLength(f"the body exceeds the {self.room} bytes the upload has left")
            self._received += len(chunk)
            if self.on_bytes is not None:
                self.on_bytes(len(chunk))
            self._batch.append(chunk)
            self._batch_size += len(chunk)
            if self._batch_size >= self.buffer_bytes:
                await self._flush()
            if self._checkpoint_due():
                await self._flush()  # what is still in the batch counts too
                await self._sync()
                assert self.checkpoint is not None
                await self.checkpoint(self.start + self._synced)
                self._last_checkpoint = time.monotonic()

    def _checkpoint_due(self) -> bool:
        if self.checkpoint is None or self.checkpoint_bytes <= 0:
            return False
        if self._received - self._synced < self.checkpoint_bytes:
            return False
        return self._last_activity - self._last_checkpoint >= self.checkpoint_s

    async def _flush(self) -> None:
        """Start writing the gathered batch once the previous write is done (at most one in flight)."""
        if not self._batch:
            return
        await self._drain()
        batch, offset = self._batch, self.start + self._written
        self._batch, self._batch_size = [], 0
        self._in_flight = asyncio.ensure_future(self.writer.write(batch, offset, self.hasher))

    async def _finish(self) -> None:
        """Write what is left and sync: the last batch in one worker call with the sync and the close."""
        await self._drain()
        if self._batch:
            batch, offset = self._batch, self.start + self._written
            self._batch, self._batch_size = [], 0
            self._written += await self.writer.write_last(batch, offset, self.hasher, self.length)
            self._synced = self._written
        else:
            await self._sync()

    async def _drain(self, ignore_errors: bool = False) -> None:
        task = self._in_flight
        if task is None:
            return
        # asyncio.wait never cancels the write, even when we are being cancelled ourselves; the task is
        # only forgotten once it is done, so a cancelled wait loses no count of written bytes.
        await asyncio.wait({task})
        self._in_flight = None
        if ignore_errors and task.exception() is not None:
            return
        self._written += task.result()

    async def _sync(self) -> None:
        await self._drain()
        if self._synced != self._written:
            await self.writer.sync()
            self._synced = self._written

    async def _watch_lock(self, receiver: asyncio.Task[object]) -> None:
        assert self.lock is not None
        while True:
            await asyncio.sleep(WATCH_INTERVAL_S)
            quiet_for = time.monotonic() - self._last_activity
            if quiet_for >= self.stale_after_s and await self.lock.release_requested():
                if self._receiving:  # (the receiver is then waiting inside _receive: the cancel lands there)
                    self._interrupted = True
                    receiver.cancel()
                return
