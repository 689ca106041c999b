"""What a browser really gets (issue 15): Debian's Chromium uploading one file through tusedge's upload page
(4 parallel parts, tus-js-client) over HTTP/1.1, HTTP/2 and HTTP/3, through the link model
(benchmarks/linkmodel.py, TCP and UDP) in front of a durable tusedge server with TLS and ``--http3``.

    python -m benchmarks.browser_links [--size 128MiB] [--reps 2] [--links capped,longfat,lossy]
        [--protocols 1.1,2,3] [--dir DIR]

HTTP/1.1 gives every part its own connection (``--disable-http2``); HTTP/2 (ALPN) and HTTP/3 (QUIC forced
for the origin) carry all four parts on one connection, so a per-connection limit applies to the whole
upload there. Each run is a fresh browser profile; the time is from choosing the file until the page shows
it done (the final upload merged). The protocol each request used is read from the page's Resource Timing
(``nextHopProtocol``), the connections from the relay. Needs Node with playwright-core (tests/browser).
"""

from __future__ import annotations

import argparse
import hashlib
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from benchmarks.__main__ import machine
from benchmarks.linkmodel import PathModel, RelayProcess
from benchmarks.servers import ROOT
from benchmarks.workloads import MIB, make_random_file
from tusedge.config import parse_size
from tusedge.tls import spki_sha256, ssl_context_for, write_self_signed

sys.path.insert(0, str(ROOT / "tests"))
from browser.browser_harness import Browser, ensure_page_built, node_with_playwright
from browser.page import wait_done, wait_ready

TUS = {"Tus-Resumable": "1.0.0"}
LINKS = {
    "none": PathModel(),  # the relay without limits: what the relay itself costs
    "capped": PathModel(rate=12.5e6, rtt=0.02, window=4 * MIB),
    "longfat": PathModel(rtt=0.08, window=4 * MIB),
    # A mobile uplink: one shared 40 Mbit/s bottleneck, 60 ms, 1 % random loss.
    "lossy": PathModel(shared_rate=5e6, rtt=0.06, window=4 * MIB, loss=0.01, seed=15),
}
PROTOCOL_FLAGS = {"1.1": ["--disable-http2", "--disable-quic"], "2": ["--disable-quic"], "3": ["--enable-quic"]}
PROTOCOLS = "() => [...new Set(performance.getEntriesByType('resource').map((e) => e.nextHopProtocol))]"


@dataclass
class Sample:
    seconds: float
    protocols: list[str]
    tcp_connections: int


class TlsServer:
    """``tusedge serve`` with TLS and HTTP/3 on a free port (TCP and UDP), in ``data``."""

    def __init__(self, data: Path, cert: Path, key: Path) -> None:
        cmd = [sys.executable, "-m", "tusedge", "serve", "--port", "0", "--data-dir", str(data),
               "--certfile", str(cert), "--keyfile", str(key), "--http3", "--finish-wait-s", "3600",
               "--log-level", "warning"]  # fmt: skip
        self.proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            found = re.search(r"Running on https://[^:]+:(\d+)", line)
            if found:
                self.port = int(found.group(1))
                break
        else:
            raise RuntimeError("tusedge did not start")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)


def run_once(node: str, work: Path, relay: RelayProcess, protocol: str, spki: str, source: Path, cert: Path,
             digest: str) -> Sample:  # fmt: skip
    profile = Path(tempfile.mkdtemp(prefix="profile-", dir=work))
    origin = relay.origin("https")
    flags = [f"--ignore-certificate-errors-spki-list={spki}", *PROTOCOL_FLAGS[protocol]]
    if protocol == "3":
        flags.append(f"--origin-to-force-quic-on=127.0.0.1:{relay.port}")
    before = relay.tcp_flows()
    with Browser(node, profile, work / "driver.log") as browser:
        browser.launch(flags)
        assert browser.goto(origin + "/") == 200
        wait_ready(browser)
        started = time.monotonic()
        browser.set_input_files("#file-input", [source])
        done = wait_done(browser, source.name, timeout=3600)
        seconds = time.monotonic() - started
        protocols = browser.evaluate(PROTOCOLS)
    shutil.rmtree(profile, ignore_errors=True)
    url = done["url"]
    with httpx.Client(verify=ssl_context_for(cert), timeout=600) as client:
        body = client.get(url).content
        if hashlib.sha256(body).hexdigest() != digest:
            raise RuntimeError(f"{url}: the server's copy differs")
        client.delete(url, headers=TUS)
    return Sample(seconds, sorted(p for p in protocols if p), relay.tcp_flows() - before)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.browser_links", description=__doc__.split("\n")[0])
    parser.add_argument("--size", default="128MiB")
    parser.add_argument("--reps", type=int, default=2)
    parser.add_argument("--links", default="capped,longfat,lossy")
    parser.add_argument("--protocols", default="1.1,2,3")
    parser.add_argument("--dir", type=Path, default=None)
    args = parser.parse_args(argv)
    size = parse_size(args.size)
    ensure_page_built()
    node = node_with_playwright()
    work = Path(tempfile.mkdtemp(prefix="tusedge-browser-links-", dir=args.dir))
    out = [f"Command: `python -m benchmarks.browser_links {' '.join(argv if argv is not None else sys.argv[1:])}`\n",
           machine() + "\n"]  # fmt: skip
    try:
        source = work / "upload.bin"
        make_random_file(source, size)
        digest = hashlib.sha256(source.read_bytes()).hexdigest()
        files = write_self_signed(work / "tls", hosts=["127.0.0.1"])
        spki = spki_sha256(files.certfile.read_bytes())
        server = TlsServer(work / "data", files.certfile, files.keyfile)
        try:
            for name in args.links.split(","):
                relay = RelayProcess(LINKS[name], ("127.0.0.1", server.port), udp=True)
                samples: dict[str, list[Sample]] = {p: [] for p in args.protocols.split(",")}
                try:
                    for _ in range(args.reps):
                        for protocol in samples:
                            samples[protocol].append(
                                run_once(node, work, relay, protocol, spki, source, files.certfile, digest)
                            )
                finally:
                    relay.stop()
                out += [f"\n### Chromium, upload page (4 parts), {size / MIB:.0f} MiB, {name} link"
                        f" ({LINKS[name].describe()})\n",
                        "| protocol | requests went over | TCP connections | median s | MB/s | runs s |",
                        "|---|---|---:|---:|---:|---|"]  # fmt: skip
                for protocol, runs in samples.items():
                    seconds = statistics.median(s.seconds for s in runs)
                    used = ", ".join(sorted({p for s in runs for p in s.protocols}))
                    each = ", ".join(f"{s.seconds:.1f}" for s in runs)
                    out.append(f"| HTTP/{protocol} | {used} | {runs[-1].tcp_connections} | {seconds:.1f}"
                               f" | {size / seconds / 1e6:.1f} | {each} |")  # fmt: skip
                print("\n".join(out[-(len(samples) + 3) :]), flush=True)
        finally:
            server.stop()
        print("\n".join(out))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
