"""Request bodies sent with ``Content-Encoding: zstd``, decoded while they stream in, in front of the body
pump: the pump, the offsets, ``Upload-Checksum`` and ``Upload-Length`` only ever see decoded bytes.

Memory stays bounded whatever the body claims to be: each decoding step returns at most ``step`` bytes
(a zstd bomb — megabytes of output per byte of input — is decoded step by step, and the pump cuts it off
with 413 once it passes the upload's length), and a frame that asks for a window larger than the server
allows is refused (the window is the decoder's memory). Decoding runs in a worker thread, a batch of input
at a time. When the client goes away mid-body, what arrived is decoded first, so every byte that was fully
decoded is kept; a body that is not valid zstd, or ends inside a frame, is refused with 400 and changes
nothing.
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator

import anyio.to_thread

from tusedge.errors import ContentDecodingFailed

if sys.version_info >= (3, 14):
    from compression import zstd
else:
    from backports import zstd

ZSTD = "zstd"
SUPPORTED = (ZSTD,)
BATCH_BYTES = 256 * 1024  # encoded bytes gathered before a worker-thread hop
STEP_BYTES = 4 * 1024 * 1024  # decoded bytes at most per step


class ZstdBodyDecoder:
    """Decodes one body: a sequence of zstd frames (any number, as ``zstd`` concatenates them)."""

    def __init__(self, max_window_bytes: int) -> None:
        self.window_log_max = max(10, max_window_bytes.bit_length() - 1)
        self.max_window_bytes = max_window_bytes
        self._decompressor: zstd.ZstdDecompressor | None = None  # the frame being decoded
        self._pending = b""  # input after the end of a frame: the start of the next one

    @property
    def at_frame_edge(self) -> bool:
        """Every frame begun has ended, and nothing of a next one has arrived."""
        return self._decompressor is None and not self._pending

    def step(self, data: bytes, limit: int) -> tuple[bytes, bool]:
        """Feed ``data`` (b"" for more of what was fed before); return up to ``limit`` decoded bytes and
        whether the decoder wants more input before it can give more."""
        if self._pending:
            data, self._pending = self._pending + data, b""
        if self._decompressor is None:
            if not data:
                return b"", True
            options = {int(zstd.DecompressionParameter.window_log_max): self.window_log_max}
            self._decompressor = zstd.ZstdDecompressor(options=options)
        d = self._decompressor
        try:
            out = d.decompress(data, max_length=limit)
        except zstd.ZstdError as exc:
            raise self._refusal(exc) from None
        if d.eof:  # this frame is done; what follows it starts the next one
            self._decompressor, self._pending = None, d.unused_data
            return out, not self._pending
        return out, d.needs_input

    def _refusal(self, exc: zstd.ZstdError) -> ContentDecodingFailed:
        if "memory" in str(exc).lower() or "window" in str(exc).lower():
            return ContentDecodingFailed(
                f"the zstd frame needs a window larger than this server's {self.max_window_bytes} bytes"
            )
        return ContentDecodingFailed(f"the body is not valid zstd: {exc}")


async def decoded(chunks: AsyncIterator[bytes], max_window_bytes: int) -> AsyncIterator[bytes]:
    """The decoded bytes of a zstd-encoded body, in pieces of at most ``STEP_BYTES``."""
    decoder = ZstdBodyDecoder(max_window_bytes)
    batch: list[bytes] = []
    size = 0
    ended: BaseException | None = None
    iterator = chunks.__aiter__()
    while ended is None:
        try:
            chunk = await iterator.__anext__()
        except StopAsyncIteration:
            break
        except Exception as exc:  # the client went away (ClientDisconnect), a read timeout...
            ended = exc
            break
        if chunk:
            batch.append(chunk)
            size += len(chunk)
        if size >= BATCH_BYTES:
            data, batch, size = b"".join(batch), [], 0
            async for piece in _drain(decoder, data):
                yield piece
    # What arrived is decoded before the end (or the interruption) is passed on.
    if batch:
        async for piece in _drain(decoder, b"".join(batch)):
            yield piece
    if ended is not None:
        raise ended
    if not decoder.at_frame_edge:
        raise ContentDecodingFailed("the zstd body ends inside a frame")


async def _drain(decoder: ZstdBodyDecoder, data: bytes) -> AsyncIterator[bytes]:
    while True:
        out, wants_input = await anyio.to_thread.run_sync(decoder.step, data, STEP_BYTES)
        data = b""
        if out:
            yield out
        if wants_input:
            return
