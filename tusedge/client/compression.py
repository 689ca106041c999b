"""zstd-compressed PATCH bodies (``tusedge upload --compress zstd|auto``), for servers that take them
(``Accept-Encoding: zstd`` in their OPTIONS answer, RFC 7694; docs/compression.md).

Every PATCH body is one zstd frame of the chunk's bytes, compressed piece by piece in a worker thread as
it is sent (memory stays at a piece and the compressor's window). The server counts offsets, lengths and
``Upload-Checksum`` in decoded bytes, so everything else about the upload is unchanged: a PATCH cut off
is continued from the server's offset with a new frame.

``auto`` compresses a file only when a sample of it shrinks by at least 10 %: eight 1 MiB pieces spread
over the file (the whole file when it is smaller), compressed as the upload would.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass
from typing import Literal

import anyio.to_thread

from tusedge.client.source import Source

if sys.version_info >= (3, 14):
    from compression import zstd
else:
    from backports import zstd

Mode = Literal["none", "zstd", "auto"]
ENCODING = "zstd"
# zstd -1: on logs and dumps about as small as -3 (4.1:1 against 4.0:1 on the benchmark's log) at 2.6x the
# speed (393 against 151 MB/s of one core here): with -3 the compressor, not the link, set the pace of a
# loaded machine (docs/compression.md).
LEVEL = 1
SAMPLES = 8
SAMPLE_BYTES = 1024 * 1024
MIN_SAVING = 0.10
AHEAD = 4  # compressed pieces (of ~1 MiB input each) made ready before the connection takes them


@dataclass(frozen=True)
class Estimate:
    sampled: int
    compressed: int

    @property
    def saving(self) -> float:
        return 1 - self.compressed / self.sampled if self.sampled else 0.0


def estimate(source: Source) -> Estimate:
    """Compress samples of ``source`` (blocking: call it in a worker thread)."""
    size = source.size
    if size <= SAMPLES * SAMPLE_BYTES:
        starts = list(range(0, size, SAMPLE_BYTES))
    else:
        stride = (size - SAMPLE_BYTES) // (SAMPLES - 1)
        starts = [i * stride for i in range(SAMPLES)]
    sampled = compressed = 0
    for start in starts:
        data = source.read(start, min(SAMPLE_BYTES, size - start))
        sampled += len(data)
        compressed += len(zstd.compress(data, level=LEVEL))
    return Estimate(sampled, compressed)


def should_compress(mode: Mode, offered: bool, source: Source) -> bool:
    """Whether to compress: ``zstd`` always (where the server takes it), ``auto`` when the sample saves at
    least 10 %. Blocking (``auto`` reads the samples): call it in a worker thread."""
    if mode == "none" or not offered:
        return False
    return mode == "zstd" or estimate(source).saving >= MIN_SAVING


class FrameWriter:
    """One zstd frame, fed piece by piece."""

    def __init__(self) -> None:
        self._compressor = zstd.ZstdCompressor(level=LEVEL)

    def feed(self, data: bytes, last: bool) -> bytes:
        if last:
            out = self._compressor.compress(data, mode=zstd.ZstdCompressor.FLUSH_FRAME)
        else:
            out = self._compressor.compress(data, mode=zstd.ZstdCompressor.CONTINUE)
        return out


async def compressed(pieces: AsyncIterator[bytes], total: int) -> AsyncGenerator[bytes, None]:
    """The zstd frame of ``total`` bytes arriving as ``pieces``: each piece compressed in a worker thread,
    up to ``AHEAD`` pieces ahead of the connection, so reading and compressing the next piece overlaps
    sending this one (one after the other, the link waited for the compressor after every piece)."""
    frame = FrameWriter()
    ready: asyncio.Queue[bytes | BaseException | None] = asyncio.Queue(maxsize=AHEAD)

    async def produce() -> None:
        seen, ended = 0, False
        try:
            async for piece in pieces:
                seen += len(piece)
                ended = seen >= total
                out = await anyio.to_thread.run_sync(frame.feed, piece, ended)
                if out:
                    await ready.put(out)
            if not ended:  # an empty chunk still needs its (empty) frame to be valid zstd
                await ready.put(await anyio.to_thread.run_sync(frame.feed, b"", True))
            await ready.put(None)
        except Exception as exc:  # handed to the consumer, raised where the body is read
            await ready.put(exc)
        finally:
            close = getattr(pieces, "aclose", None)
            if close is not None:
                await close()

    producer = asyncio.ensure_future(produce())
    try:
        while (item := await ready.get()) is not None:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        producer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await producer
