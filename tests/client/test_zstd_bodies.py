"""The client's zstd bodies (tusedge/client/compression.py): one valid frame per chunk, compressed ahead of
the connection (reading and compressing the next pieces overlaps sending this one), at the fast level."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator

from tusedge.client import compression

if sys.version_info >= (3, 14):
    from compression import zstd
else:
    from backports import zstd

MIB = 1024 * 1024


def log_piece(n: int) -> bytes:
    lines = [f"2026-12-02T07:{i % 60:02d}:00Z INFO upload={i * 2654435761 % 2**32:08x} bytes={i * 977}\n"
             for i in range(n * 20_000, (n + 1) * 20_000)]  # fmt: skip
    return "".join(lines).encode()[:MIB]


async def test_the_body_is_one_frame_of_the_chunk_and_compressed_ahead_of_the_connection() -> None:
    pieces = [log_piece(n) for n in range(12)]
    pulled = 0

    async def source() -> AsyncIterator[bytes]:
        nonlocal pulled
        for piece in pieces:
            pulled += 1
            yield piece

    body = compression.compressed(source(), sum(map(len, pieces)))
    out = [await anext(body)]
    # The connection is busy sending the first output: meanwhile the next pieces are read and compressed.
    async with asyncio.timeout(20):
        while pulled < 1 + compression.AHEAD:
            await asyncio.sleep(0.01)
    out += [data async for data in body]
    assert zstd.decompress(b"".join(out)) == b"".join(pieces)
    assert pulled == len(pieces)


async def test_a_body_given_up_part_way_stops_its_compressor_and_closes_its_source() -> None:
    closed = asyncio.Event()

    async def source() -> AsyncIterator[bytes]:
        try:
            for n in range(1000):
                yield log_piece(n % 4)
        finally:
            closed.set()

    body = compression.compressed(source(), 1000 * MIB)
    assert await anext(body)
    await body.aclose()  # the PATCH failed: httpx stops reading the body
    async with asyncio.timeout(20):
        await closed.wait()


async def test_an_error_reading_the_file_reaches_whoever_reads_the_body() -> None:
    async def source() -> AsyncIterator[bytes]:
        yield log_piece(0)
        raise OSError("the disk went away")

    body = compression.compressed(source(), 10 * MIB)
    try:
        async for _ in body:
            pass
    except OSError as exc:
        assert "disk went away" in str(exc)
    else:
        raise AssertionError("the read error was swallowed")


def test_the_level_is_the_fast_one() -> None:
    """zstd -1: about as small as -3 on logs and twice as fast or more (the compressor set the pace)."""
    assert compression.LEVEL == 1
    data = b"".join(log_piece(n) for n in range(4))
    assert len(zstd.compress(data, level=compression.LEVEL)) < len(data) / 3
