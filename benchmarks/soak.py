"""Soak: many concurrent clients for minutes against one tusedge server (issue 11), not a CI benchmark.

Each of ``--clients`` asyncio clients loops until ``--duration`` s have passed, picking one of:
- an upload of 16 KiB-1 MiB in one PATCH, then HEAD, then a download checked byte for byte;
- an upload whose first PATCH is cut off mid-body (the client closes its socket), then HEAD and a resume
  from the offset HEAD reports, then a check of the download;
- a creation followed by DELETE (and HEAD: 404/410);
- HEADs of an upload it made earlier.
Every answer is checked (status and, for downloads, content); anything else is an error, printed with a
sample. Every 5 s the server's resident memory and open file descriptors are sampled; the HEAD latencies of
the whole run give p50/p99.

    flock /tmp/tusedge-bench.lock python -m benchmarks.soak [--clients 200] [--duration 300] [--dir PATH]
                                                            [--trace-memory DIR]

The result is a markdown block (errors, operations, HEAD p50/p99, RSS and fds over time). Exit status 1
when there were errors. ``--trace-memory DIR`` runs the server under tracemalloc (benchmarks/traced_serve.py)
and adds its traced Python memory over time and the allocation sites that grew most between the second
snapshot and the last: is a rise of RSS Python objects (a table that grows per request) or native memory?
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import sys
import tempfile
import time
import tracemalloc
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from benchmarks.measure import process_tree, rss_bytes
from benchmarks.servers import TUSEDGE, RunningServer, ServerSpec

TUS = {"Tus-Resumable": "1.0.0"}
OCTETS = {**TUS, "Content-Type": "application/offset+octet-stream"}
MIB = 1024 * 1024


@dataclass
class Tally:
    ops: Counter[str] = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)
    head_s: list[float] = field(default_factory=list)
    samples: list[tuple[float, int, int]] = field(default_factory=list)  # (s since start, RSS, fds)

    def error(self, what: str) -> None:
        self.errors.append(what)


def open_fds(pid: int) -> int:
    total = 0
    for p in process_tree(pid):
        try:
            total += len(os.listdir(f"/proc/{p}/fd"))
        except OSError:
            continue
    return total


class Client:
    def __init__(self, endpoint: str, http: httpx.AsyncClient, tally: Tally, rng: random.Random) -> None:
        self.endpoint, self.http, self.tally, self.rng = endpoint, http, tally, rng
        self.mine: list[tuple[str, int]] = []  # (url, offset) of uploads kept for HEADs

    async def expect(self, response: httpx.Response, *statuses: int, what: str) -> bool:
        if response.status_code in statuses:
            return True
        self.tally.error(f"{what}: {response.status_code} {response.text[:120]!r}")
        return False

    async def head(self, url: str) -> httpx.Response:
        started = time.perf_counter()
        response = await self.http.head(url, headers=TUS)
        self.tally.head_s.append(time.perf_counter() - started)
        return response

    async def create(self, size: int) -> str | None:
        response = await self.http.post(self.endpoint, headers={**TUS, "Upload-Length": str(size)})
        if not await self.expect(response, 201, what="POST"):
            return None
        return str(httpx.URL(self.endpoint).join(response.headers["Location"]))

    async def check_download(self, url: str, data: bytes) -> None:
        response = await self.http.get(url)
        if await self.expect(response, 200, what="GET") and response.content != data:
            self.tally.error(f"GET {url}: {len(response.content)} bytes that differ from the {len(data)} sent")
        self.tally.ops["download"] += 1

    async def upload(self) -> None:
        data = self.rng.randbytes(self.rng.randint(16 * 1024, MIB))
        url = await self.create(len(data))
        if url is None:
            return
        response = await self.http.patch(url, content=data, headers={**OCTETS, "Upload-Offset": "0"})
        if not await self.expect(response, 204, what="PATCH"):
            return
        head = await self.head(url)
        if await self.expect(head, 200, what="HEAD") and head.headers.get("Upload-Offset") != str(len(data)):
            self.tally.error(f"HEAD {url}: offset {head.headers.get('Upload-Offset')} after a 204 of {len(data)}")
        await self.check_download(url, data)
        self.mine.append((url, len(data)))
        self.tally.ops["upload"] += 1

    async def cut_off_upload(self) -> None:
        data = self.rng.randbytes(self.rng.randint(256 * 1024, 2 * MIB))
        url = await self.create(len(data))
        if url is None:
            return
        parts = httpx.URL(url)
        _reader, writer = await asyncio.open_connection(parts.host, parts.port)
        head = (f"PATCH {parts.raw_path.decode()} HTTP/1.1\r\nHost: {parts.netloc.decode()}\r\n"
                f"Tus-Resumable: 1.0.0\r\nContent-Type: application/offset+octet-stream\r\n"
                f"Upload-Offset: 0\r\nContent-Length: {len(data)}\r\n\r\n")  # fmt: skip
        cut = self.rng.randint(1, len(data) - 1)
        writer.write(head.encode() + data[:cut])
        await writer.drain()
        writer.close()  # the client goes away mid-body
        await writer.wait_closed()
        # The server commits what it read once it notices; HEAD may see 0 first and must never pass ``cut``.
        deadline = time.monotonic() + 30
        offset = -1
        while time.monotonic() < deadline:
            response = await self.head(url)
            if not await self.expect(response, 200, what="HEAD after a cut-off"):
                return
            offset = int(response.headers["Upload-Offset"])
            if offset > cut:
                self.tally.error(f"HEAD {url}: offset {offset} past the {cut} bytes sent")
                return
            patched = await self.http.patch(
                url, content=data[offset:], headers={**OCTETS, "Upload-Offset": str(offset)}
            )
            if patched.status_code == 204:
                break
            if patched.status_code not in (409, 423):  # the cut-off request still holds the upload: retry
                await self.expect(patched, 204, what="resuming PATCH")
                return
            await asyncio.sleep(0.05)  # the pace of a client's retry, not a wait on the server
        else:
            self.tally.error(f"{url}: could not resume within 30 s (last offset {offset})")
            return
        await self.check_download(url, data)
        self.tally.ops["cut-off and resume"] += 1

    async def create_and_delete(self) -> None:
        url = await self.create(self.rng.randint(1, 10 * MIB))
        if url is None:
            return
        await self.expect(await self.http.delete(url, headers=TUS), 204, what="DELETE")
        await self.expect(await self.head(url), 404, 410, what="HEAD after DELETE")
        self.tally.ops["create and delete"] += 1

    async def heads(self) -> None:
        if not self.mine:
            return await self.upload()
        url, size = self.rng.choice(self.mine)
        response = await self.head(url)
        if await self.expect(response, 200, what="HEAD") and response.headers.get("Upload-Offset") != str(size):
            self.tally.error(f"HEAD {url}: offset {response.headers.get('Upload-Offset')}, expected {size}")
        self.tally.ops["head"] += 1

    async def run(self, until: float) -> None:
        actions = [self.upload] * 3 + [self.cut_off_upload] * 2 + [self.create_and_delete] + [self.heads] * 4
        while time.monotonic() < until:
            try:
                await self.rng.choice(actions)()
            except (httpx.HTTPError, OSError) as exc:
                self.tally.error(f"{type(exc).__name__}: {exc}")
            if len(self.mine) > 20:
                self.mine.pop(0)


async def sample(pid: int, tally: Tally, started: float, until: float, every_s: float = 5.0) -> None:
    while True:
        tally.samples.append((time.monotonic() - started, rss_bytes(pid), open_fds(pid)))
        if time.monotonic() >= until:
            return
        await asyncio.sleep(min(every_s, max(0.0, until - time.monotonic())))


async def soak(endpoint: str, pid: int, clients: int, duration_s: float, seed: int) -> Tally:
    tally = Tally()
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(limits=limits, timeout=120) as http:
        started = time.monotonic()
        until = started + duration_s
        sampler = asyncio.create_task(sample(pid, tally, started, until))
        workers = [Client(endpoint, http, tally, random.Random(seed + i)).run(until) for i in range(clients)]
        await asyncio.gather(*workers)
        await sampler
        tally.samples.append((time.monotonic() - started, rss_bytes(pid), open_fds(pid)))
    return tally


def report(tally: Tally, clients: int, duration_s: float) -> str:
    heads = sorted(tally.head_s)
    p50 = statistics.median(heads) * 1e3 if heads else float("nan")
    p99 = heads[min(len(heads) - 1, int(len(heads) * 0.99))] * 1e3 if heads else float("nan")
    ops = ", ".join(f"{name} {count}" for name, count in sorted(tally.ops.items()))
    lines = [f"{clients} clients for {duration_s:.0f} s; load average {os.getloadavg()[0]:.1f} at the end", "",
             "| errors | operations | HEAD requests | HEAD p50 | HEAD p99 |", "| --- | --- | --- | --- | --- |",
             f"| {len(tally.errors)} | {ops} | {len(heads)} | {p50:.1f} ms | {p99:.1f} ms |", "",
             "| s | server RSS MiB | open fds |", "| --- | --- | --- |"]  # fmt: skip
    step = max(1, len(tally.samples) // 12)
    shown = tally.samples[::step] + ([tally.samples[-1]] if (len(tally.samples) - 1) % step else [])
    lines += [f"| {t:.0f} | {rss / MIB:.1f} | {fds} |" for t, rss, fds in shown]
    if tally.errors:
        lines += ["", "first errors:", *[f"- {e}" for e in tally.errors[:10]]]
    return "\n".join(lines)


def traced_tusedge(out: Path) -> ServerSpec:
    def command(port: int, data: Path) -> tuple[list[str], dict[str, str]]:
        args = [sys.executable, "-m", "benchmarks.traced_serve", str(out), "serve", "--port", str(port)]
        return [*args, "--data-dir", str(data), "--log-level", "warning", "--finish-wait-s", "3600"], {}

    return ServerSpec("tusedge traced", command, durable=True, concatenation=True)


def memory_report(out: Path, top: int = 8) -> str:
    """The traced series, and the allocation sites that grew most from the second snapshot to the last."""
    lines = ["", "tracemalloc (s, RSS, traced Python memory, objects, threads):", "```",
             *(out / "series.txt").read_text().splitlines(), "```"]  # fmt: skip
    snapshots = sorted(out.glob("snap-*.pickle"))
    if len(snapshots) >= 3:
        ignore = [tracemalloc.Filter(False, tracemalloc.__file__)]
        first = tracemalloc.Snapshot.load(str(snapshots[1])).filter_traces(ignore)
        last = tracemalloc.Snapshot.load(str(snapshots[-1])).filter_traces(ignore)
        lines += [f"grew most from {snapshots[1].name} to {snapshots[-1].name}:", "```"]
        lines += [str(stat) for stat in last.compare_to(first, "lineno")[:top] if stat.size_diff > 0]
        lines.append("```")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.soak")
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--duration", type=float, default=300.0, help="seconds")
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--dir", type=Path, default=None, help="folder for the server's data")
    trace_help = "run the server under tracemalloc, snapshots into DIR (diagnosis: several times slower)"
    parser.add_argument("--trace-memory", type=Path, default=None, metavar="DIR", help=trace_help)
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="tusedge-soak-", dir=args.dir))
    server = RunningServer(traced_tusedge(args.trace_memory) if args.trace_memory else TUSEDGE, work)
    try:
        tally = asyncio.run(soak(server.endpoint, server.pid, args.clients, args.duration, args.seed))
    finally:
        server.stop()
    print(report(tally, args.clients, args.duration))
    if args.trace_memory:
        print(memory_report(args.trace_memory))
    return 1 if tally.errors else 0


if __name__ == "__main__":
    raise SystemExit(main())
