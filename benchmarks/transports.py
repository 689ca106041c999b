"""Transport benchmark (issue 14): tus uploads into tusedge over HTTP/1.1, HTTP/2 and HTTP/3, with the
built-in HTTP/3 in one and two workers and with Caddy (examples/caddy/Caddyfile) in front, sent by our
client and by Chromium, in one run side by side: MB/s and the server's CPU seconds per GiB (every tusedge
process, and Caddy's own when it is in front), and the sender's (our client in this process, or Chromium's
process tree), so that a row says what all of it cost on the shared cores. Figures go to docs/benchmarks.md.

    python -m benchmarks.transports [--size-mib 128] [--clients 4] [--only h1,h3-w2,...] [--no-chromium]
        [--caddyfile VARIANT] [--profile] [--dir DIR]

Scenarios (``--only`` takes these names):

- ``h1``, ``h2``: our client (httpx), one upload in one PATCH over TLS to ``tusedge --http3``.
- ``h3``: the same over built-in HTTP/3; ``h3-c4``: ``--clients`` clients at once, one QUIC connection
  each, ``size / clients`` each; ``h3-w2``: the same against ``--workers 2`` (the share of CPU each
  worker used is reported).
- ``caddy-h3``: our client over HTTP/3 to Caddy, HTTP/1.1 to ``tusedge --trust-proxy``.
- ``chromium-h2``, ``chromium-h3``, ``chromium-caddy-h3``, ``chromium-caddy-discard-h3``: headless
  Chromium (QUIC forced where h3) runs fetch(): 4 partial uploads PATCHed at once on one connection, then
  the final; timed in the page. ``discard`` is the same Caddy in front of a stub that reads and drops the
  bodies, the ceiling of the browser and the front on this machine.

``--profile`` samples the server during ``h3`` with py-spy (if installed) and says where its time goes.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import http.server
import json
import os
import random
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from benchmarks.servers import ROOT, free_port
from tusedge.client.http3 import H3Transport
from tusedge.tls import spki_sha256, ssl_context_for, write_self_signed

MIB = 1024 * 1024
GIB = 1024 * MIB
CLK_TCK = os.sysconf("SC_CLK_TCK")
TUS = {"Tus-Resumable": "1.0.0"}
OCTETS = {**TUS, "Content-Type": "application/offset+octet-stream"}
BLOCK = 4 * MIB
SCENARIOS = ["h1", "h2", "h3", "h3-c4", "h3-w2", "caddy-h3",
             "chromium-h2", "chromium-h3", "chromium-caddy-h3", "chromium-caddy-discard-h3"]  # fmt: skip
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
CADDY = shutil.which("caddy")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process (all its threads) from /proc/<pid>/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def process_tree(pid: int) -> list[int]:
    found = [pid]
    for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split():
        found += process_tree(int(child))
    return found


class Cpu:
    """CPU seconds of process trees between ``start()`` and ``stop()``, per process."""

    def __init__(self, *roots: int) -> None:
        self.roots = roots
        self.before: dict[int, float] = {}
        self.spent: dict[int, float] = {}

    def _now(self) -> dict[int, float]:
        out = {}
        for root in self.roots:
            for pid in process_tree(root):
                with contextlib.suppress(OSError):
                    out[pid] = cpu_seconds(pid)
        return out

    def start(self) -> None:
        self.before = self._now()

    def stop(self) -> None:
        self.spent = {pid: t - self.before.get(pid, 0.0) for pid, t in self._now().items()}


class Process:
    """A server in a child process; ``port`` read from its "Running on" line (tusedge) or given (Caddy)."""

    def __init__(self, cmd: list[str], env: dict[str, str] | None = None, port: int | None = None) -> None:
        self.proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                     env={**os.environ, **(env or {})}, start_new_session=True)  # fmt: skip
        self.port = port or 0
        self.lines: list[str] = []
        assert self.proc.stdout is not None
        if port is None:
            for line in self.proc.stdout:
                self.lines.append(line)
                found = re.search(r"Running on https?://[^ ]+:(\d+) \(CTRL", line)
                if found:
                    self.port = int(found.group(1))
                    break
            else:
                raise RuntimeError("the server did not start:\n" + "".join(self.lines))
        threading.Thread(target=self._drain, daemon=True).start()

    def _drain(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stop(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)


def tusedge(work: Path, name: str, *flags: str) -> Process:
    cmd = [sys.executable, "-m", "tusedge", "serve", "--host", "127.0.0.1", "--port", "0",
           "--data-dir", str(work / name), "--log-level", "warning", "--access-log", "off", *flags]  # fmt: skip
    return Process(cmd)


CADDYFILE = ROOT / "examples" / "caddy" / "Caddyfile"


def caddy(work: Path, cert: Path, key: Path, upstream: int, caddyfile: Path = CADDYFILE) -> Process:
    """Caddy with examples/caddy/Caddyfile's site (or a variant of it) on https://127.0.0.1:PORT, as
    tests/caddy_server.py runs it."""
    assert CADDY is not None
    port = free_port()
    root = Path(tempfile.mkdtemp(prefix="caddy-", dir=work))
    site = caddyfile.read_text()
    site = site.replace("uploads.example.org {", f"https://127.0.0.1:{port} {{")
    site = site.replace("reverse_proxy 127.0.0.1:1080 {",
                        f"bind 127.0.0.1\n\ttls {cert} {key}\n\treverse_proxy 127.0.0.1:{upstream} {{")  # fmt: skip
    (root / "Caddyfile").write_text("{\n\tadmin off\n\tauto_https off\n\tgrace_period 2s\n}\n" + site)
    env = {"HOME": str(root), "XDG_DATA_HOME": str(root / "data"), "XDG_CONFIG_HOME": str(root / "config")}
    proc = Process([CADDY, "run", "--config", str(root / "Caddyfile"), "--adapter", "caddyfile"], env, port)
    deadline = time.monotonic() + 20
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return proc
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError("caddy did not start:\n" + "".join(proc.lines)) from None
            time.sleep(0.05)


class DiscardUpstream:
    """Just enough tus for the browser page, bodies read and dropped: POST 201 with a Location on the
    front, PATCH 204 with the offset, CORS for a page on another origin, 200 for the front's /readyz. An
    HTTP/1.1 server in threads."""

    def __init__(self) -> None:
        counter = iter(range(1, 1 << 30))

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _cors(self) -> None:
                self.send_header("Access-Control-Allow-Origin", "*")
                self.send_header("Access-Control-Allow-Methods", "POST, PATCH, HEAD, OPTIONS")
                self.send_header("Access-Control-Allow-Headers", "*")
                self.send_header("Access-Control-Expose-Headers", "Location, Upload-Offset")
                self.send_header("Content-Length", "0")

            def _drain(self) -> int:
                n = int(self.headers.get("Content-Length") or 0)
                left = n
                while left:
                    left -= len(self.rfile.read(min(left, 1 << 20)) or b"x" * left)
                return n

            def do_GET(self) -> None:  # /readyz: the example's health check
                self.send_response(200)
                self._cors()
                self.end_headers()

            def do_OPTIONS(self) -> None:
                self.send_response(204)
                self._cors()
                self.end_headers()

            def do_POST(self) -> None:
                self._drain()
                self.send_response(201)
                proto, host = self.headers.get("X-Forwarded-Proto", "http"), self.headers.get("Host", "")
                self.send_header("Location", f"{proto}://{host}/files/{next(counter)}")
                self._cors()
                self.end_headers()

            def do_PATCH(self) -> None:
                n = self._drain()
                self.send_response(204)
                self.send_header("Upload-Offset", str(n))
                self._cors()
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@dataclass
class Result:
    scenario: str
    sender: str
    path: str
    size: int
    wall_s: float
    server_cpu_s: float
    front_cpu_s: float = 0.0
    worker_shares: list[float] = field(default_factory=list)
    client_cpu_s: float = 0.0
    """The sender's own CPU: our client (this process) or Chromium's process tree."""

    @property
    def mb_per_s(self) -> float:
        return self.size / self.wall_s / 1e6

    @property
    def cpu_per_gib(self) -> float:
        return self.server_cpu_s / (self.size / GIB)

    @property
    def front_per_gib(self) -> float:
        return self.front_cpu_s / (self.size / GIB)

    @property
    def client_per_gib(self) -> float:
        return self.client_cpu_s / (self.size / GIB)


# --- our client ---------------------------------------------------------------------------------------------
def make_client(kind: str, certfile: Path) -> httpx.AsyncClient:
    if kind == "h3":
        return httpx.AsyncClient(transport=H3Transport(verify=str(certfile)), timeout=600)
    return httpx.AsyncClient(http1=kind == "h1", http2=kind == "h2", verify=ssl_context_for(certfile), timeout=600)


async def one_upload(endpoint: str, certfile: Path, kind: str, size: int) -> None:
    """One upload in one PATCH (with Content-Length: through Caddy an HTTP/3 body needs it)."""
    block = random.Random(size).randbytes(BLOCK)

    async def body() -> AsyncIterator[bytes]:
        left = size
        while left:
            piece = block if left >= BLOCK else block[:left]
            left -= len(piece)
            yield piece

    async with make_client(kind, certfile) as client:
        created = await client.post(endpoint, headers={**TUS, "Upload-Length": str(size)})
        created.raise_for_status()
        url = created.headers["Location"]
        response = await client.patch(
            url, content=body(), headers={**OCTETS, "Upload-Offset": "0", "Content-Length": str(size)}
        )
        if response.status_code != 204 or int(response.headers["Upload-Offset"]) != size:
            raise RuntimeError(f"{kind}: upload failed: {response.status_code} {response.text}")
        await client.delete(url, headers=TUS)  # free the disk


def own_cpu_seconds() -> float:
    """CPU seconds of this process (our client; the discarding stub runs in it too)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def our_clients(
    endpoint: str, certfile: Path, kind: str, size: int, clients: int, cpu: Cpu
) -> tuple[float, float]:
    """Wall seconds and our client's CPU seconds."""
    cpu.start()
    own = own_cpu_seconds()
    started = time.perf_counter()
    await asyncio.gather(*(one_upload(endpoint, certfile, kind, size // clients) for _ in range(clients)))
    wall = time.perf_counter() - started
    cpu.stop()
    return wall, own_cpu_seconds() - own


# --- Chromium -----------------------------------------------------------------------------------------------
PAGE = """<!doctype html><meta charset="utf-8"><script>
(async () => {
  const params = new URLSearchParams(location.search);
  const endpoint = params.get("endpoint"), size = Number(params.get("size")), parts = Number(params.get("parts"));
  const report = (path, result) => fetch(path, {method: "POST", body: JSON.stringify(result)});
  try {
    const data = new Uint8Array(size);
    for (let i = 0; i < size; i += 4096) data[i] = (i >> 12) & 255;
    const tus = {"Tus-Resumable": "1.0.0"};
    const step = Math.ceil(size / parts);
    const bodies = [...Array(parts).keys()].map((i) => data.slice(i * step, Math.min(size, (i + 1) * step)));
    await fetch(endpoint, {method: "OPTIONS"});  // the connection (QUIC: forced) is up before the clock starts
    await report("/start", {});
    const started = performance.now();
    const urls = await Promise.all(bodies.map(async (body) => {
      const created = await fetch(endpoint, {method: "POST", headers: {...tus, "Upload-Concat": "partial",
        "Upload-Length": String(body.length)}});
      const url = created.headers.get("Location");
      const patched = await fetch(url, {method: "PATCH", body, headers: {...tus, "Upload-Offset": "0",
        "Content-Type": "application/offset+octet-stream"}});
      if (patched.status !== 204) throw new Error("PATCH " + patched.status);
      return url;
    }));
    const final = await fetch(endpoint, {method: "POST",
      headers: {...tus, "Upload-Concat": "final;" + urls.join(" ")}});
    await report("/result", {seconds: (performance.now() - started) / 1000, final: final.status});
  } catch (error) {
    await report("/result", {error: String(error)});
  }
})();
</script>"""


def chromium_upload(
    endpoint: str, certfile: Path, quic_port: int | None, size: int, cpu: Cpu, work: Path
) -> tuple[float, float, float]:
    """Runs the page in headless Chromium; CPU is taken from the page's /start to its /result. Returns the
    page's seconds, Chromium's CPU seconds and this process's (the discarding stub's, where it runs)."""
    assert CHROMIUM is not None
    results: list[dict[str, Any]] = []
    browser_cpu: list[Cpu] = []
    own: list[float] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = PAGE.encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self) -> None:
            payload = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            if self.path == "/start":
                cpu.start()
                for tree in browser_cpu:
                    tree.start()
                own.append(own_cpu_seconds())
            else:
                cpu.stop()
                for tree in browser_cpu:
                    tree.stop()
                own.append(own_cpu_seconds())
                results.append(payload)
            self.send_response(204)
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    page = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=page.serve_forever, daemon=True).start()
    profile = Path(tempfile.mkdtemp(prefix="chromium-", dir=work))
    flags = [f"--ignore-certificate-errors-spki-list={spki_sha256(certfile.read_bytes())}"]
    flags += ["--enable-quic", f"--origin-to-force-quic-on=127.0.0.1:{quic_port}"] if quic_port else ["--disable-quic"]
    url = f"http://127.0.0.1:{page.server_address[1]}/?endpoint={endpoint}&size={size}&parts=4"
    browser = subprocess.Popen(
        [CHROMIUM, "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
         f"--user-data-dir={profile}", *flags, "--disable-background-networking", "--disable-component-update",
         "--disable-sync", "--no-first-run", "--no-default-browser-check", url],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    browser_cpu.append(Cpu(browser.pid))
    try:
        deadline = time.monotonic() + 1800
        while not results and time.monotonic() < deadline and browser.poll() is None:
            time.sleep(0.2)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(browser.pid, signal.SIGTERM)
        try:
            browser.wait(15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(browser.pid, signal.SIGKILL)
            browser.wait(10)
        page.shutdown()
        page.server_close()
        shutil.rmtree(profile, ignore_errors=True)
    if not results or "error" in results[0] or results[0].get("final") != 201:
        raise RuntimeError(f"Chromium upload to {endpoint} failed: {results}")
    return float(results[0]["seconds"]), sum(browser_cpu[0].spent.values()), own[-1] - own[0]


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


# --- the run ------------------------------------------------------------------------------------------------
def worker_shares(cpu: Cpu, root: int) -> list[float]:
    """Each worker's share of the server's CPU (the parent's is not a worker's)."""
    workers = {pid: t for pid, t in cpu.spent.items() if pid != root and t > 0.0}
    total = sum(cpu.spent.values()) or 1.0
    return sorted((t / total for t in workers.values()), reverse=True)


async def run(args: argparse.Namespace) -> int:
    only = [s for s in SCENARIOS if s in set(args.only or SCENARIOS)]
    if args.no_chromium or CHROMIUM is None:
        only = [s for s in only if not s.startswith("chromium")]
    if CADDY is None:
        only = [s for s in only if "caddy" not in s]
    work = Path(tempfile.mkdtemp(prefix="tusedge-transports-", dir=args.dir))
    size = args.size_mib * MIB
    results: list[Result] = []
    profile_text = ""
    try:
        tls = write_self_signed(work / "tls")
        cert, key = tls.certfile, tls.keyfile
        tls_flags = ["--certfile", str(cert), "--keyfile", str(key), "--http3", "--finish-wait-s", "3600"]

        def record(scenario: str, sender: str, path: str, timing: tuple[float, ...], cpu: Cpu, server: Process,
                   front: Process | None = None) -> None:  # fmt: skip
            """``timing``: wall seconds, the sender's CPU seconds and, for the discarding stub (it runs in
            this process, as the server), its CPU seconds."""
            wall, client_cpu, *stub = timing
            front_pids = set(process_tree(front.pid)) if front else set()
            server_cpu = sum(t for pid, t in cpu.spent.items() if pid not in front_pids)
            front_cpu = sum(t for pid, t in cpu.spent.items() if pid in front_pids)
            if stub:
                server_cpu = stub[0]
            shares = worker_shares(cpu, server.pid) if scenario.endswith("w2") else []
            results.append(Result(scenario, sender, path, size, wall, server_cpu, front_cpu, shares, client_cpu))
            r = results[-1]
            print(f"{scenario}: {r.mb_per_s:.1f} MB/s, server {r.cpu_per_gib:.1f} s/GiB"
                  f", client {r.client_per_gib:.1f} s/GiB"
                  f"{f', front {r.front_per_gib:.1f} s/GiB' if front else ''}"
                  f"{f', worker shares {[round(x, 2) for x in shares]}' if shares else ''}", flush=True)  # fmt: skip

        direct = tusedge(work, "direct", *tls_flags)
        try:
            endpoint = f"https://127.0.0.1:{direct.port}/files/"
            for scenario, kind, clients in (("h1", "h1", 1), ("h2", "h2", 1), ("h3", "h3", 1),
                                            ("h3-c4", "h3", args.clients)):  # fmt: skip
                if scenario not in only:
                    continue
                cpu = Cpu(direct.pid)
                spy = start_pyspy(direct.pid, work) if args.profile and scenario == "h3" else None
                timing = await our_clients(endpoint, cert, kind, size, clients, cpu)
                if spy is not None:
                    profile_text = stop_pyspy(spy, work)
                label = {"h1": "HTTP/1.1", "h2": "HTTP/2", "h3": "HTTP/3 built-in"}[kind]
                record(scenario, f"our client x{clients}", label, timing, cpu, direct)
            if "chromium-h2" in only:
                cpu = Cpu(direct.pid)
                page, browser, _ = chromium_upload(endpoint, cert, None, size, cpu, work)
                record("chromium-h2", "Chromium (4 parts)", "HTTP/2", (page, browser), cpu, direct)
            if "chromium-h3" in only:
                cpu = Cpu(direct.pid)
                page, browser, _ = chromium_upload(endpoint, cert, direct.port, size, cpu, work)
                record("chromium-h3", "Chromium (4 parts)", "HTTP/3 built-in", (page, browser), cpu, direct)
        finally:
            direct.stop()
        if "h3-w2" in only:
            two = tusedge(work, "two", *tls_flags, "--workers", "2")
            try:
                cpu = Cpu(two.pid)
                timing = await our_clients(f"https://127.0.0.1:{two.port}/files/", cert, "h3", size, args.clients, cpu)
                record("h3-w2", f"our client x{args.clients}", "HTTP/3 built-in, 2 workers", timing, cpu, two)
            finally:
                two.stop()
        if any("caddy" in s for s in only):
            behind = tusedge(work, "behind", "--trust-proxy", "--finish-wait-s", "3600")
            front = caddy(work, cert, key, behind.port, args.caddyfile)
            try:
                endpoint = f"https://127.0.0.1:{front.port}/files/"
                if "caddy-h3" in only:
                    cpu = Cpu(behind.pid, front.pid)
                    timing = await our_clients(endpoint, cert, "h3", size, 1, cpu)
                    record(
                        "caddy-h3", "our client x1", "HTTP/3 to Caddy, HTTP/1.1 to tusedge", timing, cpu, behind, front
                    )
                if "chromium-caddy-h3" in only:
                    cpu = Cpu(behind.pid, front.pid)
                    page, browser, _ = chromium_upload(endpoint, cert, front.port, size, cpu, work)
                    record("chromium-caddy-h3", "Chromium (4 parts)", "HTTP/3 to Caddy, HTTP/1.1 to tusedge",
                           (page, browser), cpu, behind, front)  # fmt: skip
            finally:
                front.stop()
                behind.stop()
        if "chromium-caddy-discard-h3" in only:
            stub = DiscardUpstream()
            front = caddy(work, cert, key, stub.port, args.caddyfile)
            try:
                cpu = Cpu(front.pid)
                dropped = chromium_upload(f"https://127.0.0.1:{front.port}/files/", cert, front.port, size, cpu, work)
                record("chromium-caddy-discard-h3", "Chromium (4 parts)", "HTTP/3 to Caddy, body dropped by a stub",
                       dropped, cpu, front, front)  # fmt: skip
            finally:
                front.stop()
                stub.stop()
        print()
        print(table(results))
        if profile_text:
            print("\nServer profile during the built-in HTTP/3 upload (h3):\n")
            print(profile_text)
        return 0
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


def table(results: list[Result]) -> str:
    base = {r.sender.split(" x")[0]: r for r in results if r.scenario in ("h1", "chromium-h2")}
    lines = ["| scenario | sender | path | MB/s | server CPU s/GiB | vs HTTP/1.1 (ours) or HTTP/2 (Chromium) |"
             " front CPU s/GiB | sender CPU s/GiB | all CPU s/GiB | worker shares |",
             "|---|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for r in results:
        ref = base.get("our client" if r.sender.startswith("our") else "Chromium (4 parts)")
        ratio = f"{r.cpu_per_gib / ref.cpu_per_gib:.1f}x CPU, {r.mb_per_s / ref.mb_per_s:.2f}x MB/s" if ref else ""
        shares = " / ".join(f"{x:.0%}" for x in r.worker_shares)
        front = f"{r.front_per_gib:.1f}" if r.front_cpu_s else ""
        every = r.cpu_per_gib + r.front_per_gib + r.client_per_gib
        lines.append(f"| {r.scenario} | {r.sender} | {r.path} | {r.mb_per_s:.1f} | {r.cpu_per_gib:.1f} | {ratio}"
                     f" | {front} | {r.client_per_gib:.1f} | {every:.1f} | {shares} |")  # fmt: skip
    discard = next((r for r in results if r.scenario == "chromium-caddy-discard-h3"), None)
    through = next((r for r in results if r.scenario == "chromium-caddy-h3"), None)
    if discard and through:
        lines.append("")
        lines.append(f"Chromium through Caddy to tusedge / to Caddy dropping the body: "
                     f"{through.mb_per_s / discard.mb_per_s:.2f}x MB/s")  # fmt: skip
    return "\n".join(lines)


def start_pyspy(pid: int, work: Path) -> subprocess.Popen[bytes] | None:
    pyspy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(pyspy).exists():
        print("(py-spy is not installed: no profile)", flush=True)
        return None
    return subprocess.Popen(
        [pyspy, "record", "--pid", str(pid), "--subprocesses", "--format", "raw", "--rate", "200",
         "--output", str(work / "h3.pyspy"), "--nonblocking"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip


def stop_pyspy(spy: subprocess.Popen[bytes], work: Path) -> str:
    spy.send_signal(signal.SIGINT)
    spy.wait(60)
    return summarise_stacks(read_pyspy_raw(work / "h3.pyspy"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--size-mib", type=int, default=128, help="bytes per scenario (split over its clients)")
    parser.add_argument("--clients", type=int, default=4, help="concurrent HTTP/3 clients in h3-c4 and h3-w2")
    parser.add_argument("--only", type=lambda text: text.split(","), default=None, help=f"of {','.join(SCENARIOS)}")
    parser.add_argument("--no-chromium", action="store_true")
    parser.add_argument("--caddyfile", type=Path, default=CADDYFILE, help="a variant of the example to try")
    parser.add_argument("--profile", action="store_true", help="py-spy on the server during h3")
    parser.add_argument("--dir", type=Path, default=None, help="work folder (on the disk to measure)")
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    return asyncio.run(run(parser.parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
