"""Benchmark workloads. Each returns plain numbers; __main__ interleaves servers and takes medians."""

from __future__ import annotations

import asyncio
import os
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx

from benchmarks.measure import PeakRss, cpu_seconds, rss_bytes
from benchmarks.sender import TUS, create, patch_chunks, upload_file, upload_part
from benchmarks.servers import RunningServer

MIB = 1024 * 1024
GIB = 1024 * MIB


def make_random_file(path: Path, size: int) -> None:
    block = os.urandom(16 * MIB)
    with path.open("wb") as out:
        left = size
        while left:
            n = min(len(block), left)
            out.write(block[:n])
            left -= n


@dataclass
class Sample:
    seconds: float
    cpu_s: float
    peak_rss: int

    def mb_per_s(self, size: int) -> float:
        return size / self.seconds / 1e6


def single_upload(server: RunningServer, source: Path, size: int, patch_bytes: int) -> Sample:
    """One upload of ``size`` bytes in PATCHes of ``patch_bytes``: wall time, server CPU, server peak RSS."""
    cpu0 = cpu_seconds(server.pid)
    with PeakRss(server.pid) as rss:
        start = time.perf_counter()
        url = upload_file(server.endpoint, str(source), size, patch_bytes)
        elapsed = time.perf_counter() - start
    cpu = cpu_seconds(server.pid) - cpu0
    httpx.delete(url, headers=TUS, timeout=60)
    return Sample(elapsed, cpu, rss.peak)


def sustained_upload(
    server: RunningServer, source: Path, source_size: int, total: int, window_s: float = 10.0
) -> list[tuple[float, float, int]]:
    """One upload of ``total`` bytes in a single PATCH (the source file sent again and again), sampled every
    ``window_s``: (seconds since start, MB/s in the window from the offset the server has committed,
    server RSS). The server commits every --commit-interval-bytes, so HEAD shows the durable progress."""
    url = create(server.endpoint, total)
    chunks = [
        (off % source_size, min(source_size - off % source_size, total - off)) for off in range(0, total, source_size)
    ]
    done = threading.Event()
    error: list[BaseException] = []

    def send() -> None:
        try:
            patch_chunks(url, str(source), chunks, total)
        except BaseException as exc:  # reported by the caller
            error.append(exc)
        finally:
            done.set()

    threading.Thread(target=send, daemon=True).start()
    samples: list[tuple[float, float, int]] = []
    start = time.perf_counter()
    last_offset, last_t = 0, start
    while not done.wait(window_s):
        offset = int(httpx.head(url, headers=TUS, timeout=30).headers["Upload-Offset"])
        now = time.perf_counter()
        samples.append((now - start, (offset - last_offset) / (now - last_t) / 1e6, rss_bytes(server.pid)))
        last_offset, last_t = offset, now
    if error:
        raise error[0]
    httpx.delete(url, headers=TUS, timeout=60)
    return samples


def dd_write(source: Path, target: Path, durable: bool) -> float:
    """Seconds for dd to copy ``source`` to ``target`` on the data disk (with conv=fdatasync if durable)."""
    subprocess.run(["cat", str(source)], stdout=subprocess.DEVNULL, check=True)  # source hot, like the senders'
    args = ["dd", f"if={source}", f"of={target}", "bs=4M", "status=none"]
    if durable:
        args.append("conv=fdatasync")
    start = time.perf_counter()
    subprocess.run(args, check=True)
    elapsed = time.perf_counter() - start
    target.unlink()
    return elapsed


async def _small_uploads(endpoint: str, count: int, concurrency: int, size: int) -> tuple[float, int]:
    body = os.urandom(size)
    bad_heads = 0
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(limits=limits, timeout=60) as client:
        gate = asyncio.Semaphore(concurrency)

        async def one() -> None:
            async with gate:
                created = await client.post(endpoint, headers={**TUS, "Upload-Length": str(size)})
                url = str(httpx.URL(endpoint).join(created.headers["Location"]))
                patched = await client.patch(
                    url,
                    content=body,
                    headers={**TUS, "Upload-Offset": "0", "Content-Type": "application/offset+octet-stream"},
                )
                assert patched.status_code == 204, patched.text
                head = await client.head(url, headers=TUS)
                if head.headers.get("Upload-Offset") != str(size):
                    nonlocal bad_heads
                    bad_heads += 1  # a peer's HEAD of a finished upload may fail; counted, reported

        start = time.perf_counter()
        await asyncio.gather(*(one() for _ in range(count)))
        return time.perf_counter() - start, bad_heads


def small_uploads(
    server: RunningServer, count: int, concurrency: int, size: int = 64 * 1024
) -> tuple[float, float, int]:
    """``count`` uploads of ``size`` bytes (POST + PATCH + HEAD), ``concurrency`` at a time: (uploads/s,
    server CPU ms per upload, HEADs that did not report the full offset)."""
    cpu0 = cpu_seconds(server.pid)
    elapsed, bad_heads = asyncio.run(_small_uploads(server.endpoint, count, concurrency, size))
    cpu = cpu_seconds(server.pid) - cpu0
    return count / elapsed, cpu / count * 1000, bad_heads


def parallel_upload(
    server: RunningServer, source: Path, size: int, parts: int, patch_bytes: int
) -> tuple[float, float]:
    """``parts`` partial uploads sent at once, then the final POST (which waits for the merge): (total
    seconds, seconds of the final POST alone)."""
    part = size // parts
    ranges = [(i * part, part if i < parts - 1 else size - part * (parts - 1)) for i in range(parts)]
    start = time.perf_counter()
    with ThreadPoolExecutor(parts) as pool:
        urls = list(pool.map(lambda r: upload_part(server.endpoint, str(source), r[0], r[1], patch_bytes), ranges))
    merge_start = time.perf_counter()
    if parts == 1:
        final = urls[0]
    else:
        final = create_final(server.endpoint, urls)
    end = time.perf_counter()
    head = httpx.head(final, headers=TUS, timeout=60)
    assert head.headers.get("Upload-Offset") == str(size), f"not complete: {dict(head.headers)}"
    httpx.delete(final, headers=TUS, timeout=60)
    return end - start, end - merge_start


def create_final(endpoint: str, urls: list[str]) -> str:
    response = httpx.post(endpoint, headers={**TUS, "Upload-Concat": "final;" + " ".join(urls)}, timeout=3600)
    assert response.status_code == 201, response.text
    return str(httpx.URL(endpoint).join(response.headers["Location"]))


__all__ = ["GIB", "MIB", "Sample", "create", "dd_write", "make_random_file", "parallel_upload", "single_upload",
           "small_uploads"]  # fmt: skip
