"""Transport benchmark: one large tus upload (a single PATCH) over HTTP/1.1, HTTP/2 and HTTP/3 against the
same tusedge server (TLS, ``--http3``) in one run, with wall time, throughput and the CPU seconds the server
and the client spent. ``--profile`` samples the server during the HTTP/3 upload (py-spy if installed, else
cProfile) and says where its time goes. Figures are written up in docs/http2-http3.md.

    python -m benchmarks.transports [--size-mib 1024] [--h3-size-mib N] [--h3-datagram 1200,1452] [--profile]
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import os
import pstats
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx

from tusedge.client.http3 import H3Transport
from tusedge.tls import ssl_context_for, write_self_signed

MIB = 1024 * 1024
CLK_TCK = os.sysconf("SC_CLK_TCK")
TUS = {"Tus-Resumable": "1.0.0"}
BLOCK = 4 * MIB


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process (all its threads) from /proc/<pid>/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


@dataclass
class Server:
    proc: subprocess.Popen[str]
    port: int
    profile_path: Path | None

    @property
    def endpoint(self) -> str:
        return f"https://127.0.0.1:{self.port}/files/"


def start_server(work: Path, certfile: Path, keyfile: Path, cprofile: bool) -> Server:
    profile_path = work / "server.pstats" if cprofile else None
    runner = ["-m", "cProfile", "-o", str(profile_path), "-m"] if cprofile else ["-m"]
    proc = subprocess.Popen(
        [sys.executable, *runner, "tusedge", "serve", "--host", "127.0.0.1", "--port", "0",
         "--data-dir", str(work / "data"), "--certfile", str(certfile), "--keyfile", str(keyfile), "--http3",
         "--log-level", "warning"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    assert proc.stdout is not None
    for line in proc.stdout:
        match = re.search(r"Running on https://127\.0\.0\.1:(\d+) \(CTRL", line)
        if match:
            return Server(proc, int(match.group(1)), profile_path)
    raise RuntimeError("the server did not start")


def stop_server(server: Server) -> None:
    server.proc.send_signal(signal.SIGTERM)
    try:
        server.proc.wait(60)
    except subprocess.TimeoutExpired:
        server.proc.kill()
        server.proc.wait(10)


@dataclass
class Result:
    label: str
    size: int
    wall_s: float
    server_cpu_s: float
    client_cpu_s: float
    http_version: str

    @property
    def mb_per_s(self) -> float:
        return self.size / self.wall_s / 1e6

    def row(self) -> str:
        return (
            f"| {self.label} | {self.size / MIB:.0f} MiB | {self.wall_s:.1f} s | {self.mb_per_s:.0f} MB/s "
            f"| {self.server_cpu_s:.1f} s | {self.client_cpu_s:.1f} s |"
        )


def make_client(kind: str, certfile: Path, datagram: int) -> httpx.AsyncClient:
    if kind == "h3":
        return httpx.AsyncClient(transport=H3Transport(verify=str(certfile), max_datagram_size=datagram), timeout=300)
    return httpx.AsyncClient(http1=kind == "h1", http2=kind == "h2", verify=ssl_context_for(certfile), timeout=300)


async def upload_once(server: Server, certfile: Path, kind: str, size: int, datagram: int = 1200) -> Result:
    block = os.urandom(BLOCK)

    async def body() -> AsyncIterator[bytes]:
        left = size
        while left:
            piece = block if left >= BLOCK else block[:left]
            left -= len(piece)
            yield piece

    async with make_client(kind, certfile, datagram) as client:
        created = await client.post(server.endpoint, headers={**TUS, "Upload-Length": str(size)})
        created.raise_for_status()
        url = created.headers["Location"]
        server_cpu, client_cpu, started = cpu_seconds(server.proc.pid), time.process_time(), time.perf_counter()
        response = await client.patch(
            url,
            content=body(),
            headers={**TUS, "Content-Type": "application/offset+octet-stream", "Upload-Offset": "0",
                     "Content-Length": str(size)},
        )  # fmt: skip
        wall = time.perf_counter() - started
        client_cpu = time.process_time() - client_cpu
        server_cpu = cpu_seconds(server.proc.pid) - server_cpu
        if response.status_code != 204 or int(response.headers["Upload-Offset"]) != size:
            raise RuntimeError(f"{kind}: upload failed: {response.status_code} {response.text}")
        # Free the disk for the next run.
        await client.delete(url, headers=TUS)
    label = {"h1": "HTTP/1.1", "h2": "HTTP/2", "h3": f"HTTP/3 ({datagram}-byte packets)"}[kind]
    return Result(label, size, wall, server_cpu, client_cpu, response.http_version)


# --- profiling ----------------------------------------------------------------------------------------------
# Where a sample's time is charged: the innermost frame whose file matches one of these, in this order.
_GLUE = (
    "hypercorn/protocol/quic",
    "hypercorn/protocol/h3",
    "hypercorn/asyncio/udp_server",
    "hypercorn/asyncio/worker_context",
    "tusedge/server/hypercorn_fixes",
)
AREAS: list[tuple[str, tuple[str, ...]]] = [
    ("QUIC packet protection: AEAD + header protection (aioquic, C)", ("aioquic/_crypto", "aioquic/quic/crypto")),
    ("HTTP/3 framing and QPACK (aioquic.h3)", ("aioquic/h3/", "pylsqpack")),
    ("QUIC state machine: packets, ACKs, recovery, streams (aioquic.quic)", ("aioquic/",)),
    ("Hypercorn QUIC/HTTP/3 glue: datagram loop, timers, sendto", _GLUE),
    ("ASGI + Starlette (one message per packet)", ("hypercorn/", "starlette/")),
    ("disk writes and fsync (worker threads)", ("tusedge/storage/",)),
    ("tusedge request handling (body pump, state)", ("tusedge/",)),
    ("SQLite state (SQLAlchemy, aiosqlite)", ("sqlalchemy/", "aiosqlite/")),
    ("event loop, sockets, asyncio (uvloop)", ("asyncio/", "uvloop", "runners.py", "threading.py", "anyio/")),
]


def area_of(frames: list[str]) -> str:
    for frame in reversed(frames):
        for area, needles in AREAS:
            if any(needle in frame for needle in needles):
                return area
    return "other"


def summarise_stacks(lines: list[tuple[list[str], int]], top: int = 12) -> str:
    total = sum(count for _, count in lines) or 1
    areas: collections.Counter[str] = collections.Counter()
    functions: collections.Counter[str] = collections.Counter()
    for frames, count in lines:
        areas[area_of(frames)] += count
        functions[re.sub(r":\d+\)$", ")", frames[-1])] += count  # per function, not per line
    out = ["| where | share of samples |", "|---|---|"]
    out += [f"| {area} | {count / total:.0%} |" for area, count in areas.most_common()]
    out += ["", "Top functions (self time):", ""]
    out += [f"    {count / total:5.1%}  {name}" for name, count in functions.most_common(top)]
    return "\n".join(out)


def read_pyspy_raw(path: Path) -> list[tuple[list[str], int]]:
    stacks = []
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if stack:
            stacks.append((stack.split(";"), int(count)))
    return stacks


def read_cprofile(path: Path) -> list[tuple[list[str], int]]:
    """cProfile has no stacks: charge each function's own time to its file (in microseconds)."""
    stats = pstats.Stats(str(path))
    rows = []
    for (filename, line, name), (_, _, own, _, _) in stats.stats.items():  # type: ignore[attr-defined]
        rows.append(([f"{name} ({filename}:{line})"], int(own * 1e6)))
    return rows


async def run(args: argparse.Namespace) -> int:
    work = Path(tempfile.mkdtemp(prefix="tusedge-transports-", dir=args.dir))
    pyspy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    use_pyspy = args.profile and Path(pyspy).exists()
    try:
        tls = write_self_signed(work / "tls")
        server = start_server(work, tls.certfile, tls.keyfile, cprofile=args.profile and not use_pyspy)
        results: list[Result] = []
        profile_text = ""
        try:
            size = args.size_mib * MIB
            for kind in ("h1", "h2"):
                for _ in range(args.reps):
                    results.append(await upload_once(server, tls.certfile, kind, size))
                    print(results[-1].row(), flush=True)
            h3_size = (args.h3_size_mib or args.size_mib) * MIB
            for index, datagram in enumerate(args.h3_datagram):
                for _ in range(args.reps):
                    spy = None
                    if use_pyspy and index == 0 and not profile_text:
                        raw = work / "h3.pyspy"
                        spy = subprocess.Popen(
                            [pyspy, "record", "--pid", str(server.proc.pid), "--format", "raw", "--rate", "200",
                             "--output", str(raw), "--nonblocking"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                        )  # fmt: skip
                        await asyncio.sleep(1.0)
                    results.append(await upload_once(server, tls.certfile, "h3", h3_size, datagram))
                    print(results[-1].row(), flush=True)
                    if spy is not None:
                        spy.send_signal(signal.SIGINT)
                        spy.wait(60)
                        profile_text = summarise_stacks(read_pyspy_raw(work / "h3.pyspy"))
        finally:
            stop_server(server)
        if args.profile and not use_pyspy and server.profile_path and server.profile_path.exists():
            profile_text = "(cProfile over the whole server run, own time per function)\n" + summarise_stacks(
                read_cprofile(server.profile_path)
            )
        print()
        print("| transport | size | wall | throughput | server CPU | client CPU |")
        print("|---|---|---|---|---|---|")
        for result in results:
            print(result.row())
        if profile_text:
            print("\nServer profile during the HTTP/3 upload:\n")
            print(profile_text)
        return 0
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--size-mib", type=int, default=1024, help="upload size for HTTP/1.1 and HTTP/2")
    parser.add_argument("--h3-size-mib", type=int, default=0, help="upload size for HTTP/3 (default: the same)")
    parser.add_argument(
        "--h3-datagram",
        type=lambda text: [int(x) for x in text.split(",")],
        default=[1200],
        help="QUIC packet sizes to try, comma-separated (1200: any network; 1452: Ethernet)",
    )
    parser.add_argument("--reps", type=int, default=1)
    parser.add_argument("--profile", action="store_true", help="sample the server during the (first) HTTP/3 run")
    parser.add_argument("--dir", type=Path, default=None, help="work folder (on the disk to measure)")
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    return asyncio.run(run(parser.parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
