"""Parallel parts on modelled links (issue 15): 1/2/4/6/8 parts of one file through the link model
(benchmarks/linkmodel.py) to a durable tusedge server whose data folder is a fresh ext4 or XFS image, merge
included, with tusedge's own client and with tus-js-client (Node, ``parallelUploads``; its own unaligned
split, and aligned as the upload page cuts it); the baseline of one part against six over HTTP/1.1 and
HTTP/2; and 1 against 4 parts on plain loopback (no link model).

    python -m benchmarks.parallel_links [--size 1GiB] [--reps 2] [--fs ext4,xfs] [--parts 1,2,4,6,8]
        [--links capped,longfat] [--clients tusedge,tusedge-unverified,tus-js,tus-js-aligned]
        [--sections links,http2,loopback,compression] [--dir DIR]

Links: ``capped`` is 12.5 MB/s (100 Mbit/s) per flow with a 20 ms round trip and a 4 MiB window (the cap
binds, as with per-connection shaping); ``longfat`` is 80 ms with a 4 MiB window and no cap (window/RTT,
52 MB/s per flow, binds). Every upload is a child process timed from start to exit; each is checked
complete (HEAD: Upload-Offset == size) and deleted before the next. Variants run round-robin in every
repetition; figures are medians, with the runs in brackets so the noise shows.

``compression``: one part of a compressible file (a generated application log, about 4:1 with zstd -1 and -3) and
of an incompressible one (random bytes), each with ``--compress auto`` and without, over the capped link.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from benchmarks.__main__ import machine
from benchmarks.client_parallel import check_complete
from benchmarks.linkmodel import PathModel, RelayProcess
from benchmarks.loopfs import loop_filesystem
from benchmarks.servers import ROOT, RunningServer, ServerSpec, _tusedge
from benchmarks.workloads import GIB, MIB, make_random_file
from tusedge.config import parse_size

TUS = {"Tus-Resumable": "1.0.0"}
UPLOAD_MJS = ROOT / "tests" / "js" / "upload.mjs"
LINKS = {
    "capped": PathModel(rate=12.5e6, rtt=0.02, window=4 * MIB),
    "longfat": PathModel(rtt=0.08, window=4 * MIB),
}
MERGED = re.compile(r"merged (\d+) parts, (\d+) bytes in ([\d.]+) s \((\d+) shared, (\d+) copied\)")
SERVER = ServerSpec("tusedge", _tusedge("--log-level", "info"), durable=True, concatenation=True)


@dataclass(frozen=True)
class Variant:
    client: str  # tusedge | tus-js | tus-js-aligned
    parts: int
    http: str = "1.1"  # 1.1 | 2 (tusedge only; h2c with prior knowledge)
    flags: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        extra = " ".join(self.flags)
        return f"{self.client}{' HTTP/2' if self.http == '2' else ''}{' ' + extra if extra else ''}"


@dataclass
class Sample:
    seconds: float
    merge_s: float | None = None
    shared: int = 0
    copied: int = 0


@dataclass
class Results:
    samples: dict[Variant, list[Sample]] = field(default_factory=dict)

    def add(self, variant: Variant, sample: Sample) -> None:
        self.samples.setdefault(variant, []).append(sample)


UNVERIFIED = ("--checksum", "none", "--no-digest")


def variant_of(client: str, parts: int) -> Variant:
    """A ``--clients`` name: tusedge (its defaults), tusedge-unverified (no checksum, no digest), tus-js,
    tus-js-aligned."""
    if client == "tusedge-unverified":
        return Variant("tusedge", parts, flags=UNVERIFIED)
    return Variant(client, parts)


def command(variant: Variant, path: Path, endpoint: str) -> list[str]:
    if variant.client == "tusedge":
        cmd = [sys.executable, "-m", "tusedge", "upload", str(path), endpoint, "--parallel", str(variant.parts),
               "--no-resume", "--quiet", *variant.flags]  # fmt: skip
        return [*cmd, "--http2"] if variant.http == "2" else cmd
    cmd = ["node", str(UPLOAD_MJS), "--endpoint", endpoint, "--file", str(path), "--parallel", str(variant.parts),
           "--chunk-size", str(64 * MIB)]  # fmt: skip
    return [*cmd, "--aligned"] if variant.client == "tus-js-aligned" else cmd


def run_once(server: RunningServer, endpoint: str, variant: Variant, path: Path, size: int) -> Sample:
    log = Path(server.log.name)
    seen = len(log.read_text().splitlines())
    started = time.monotonic()
    done = subprocess.run(command(variant, path, endpoint), capture_output=True, text=True, cwd=ROOT, timeout=3600)
    seconds = time.monotonic() - started
    if done.returncode != 0:
        raise RuntimeError(f"{variant.label} --parallel {variant.parts} failed: {done.stderr}{done.stdout}")
    url = done.stdout.strip() if variant.client == "tusedge" else json.loads(done.stdout.splitlines()[-1])["url"]
    check_complete(url, size)
    merged = [m for m in map(MERGED.search, log.read_text().splitlines()[seen:]) if m]
    deleted = httpx.delete(url, headers=TUS, timeout=120)
    if deleted.status_code != 204:
        raise RuntimeError(f"DELETE {url}: {deleted.status_code} {deleted.text}")
    if not merged:
        return Sample(seconds)
    m = merged[-1]
    return Sample(seconds, float(m[3]), int(m[4]), int(m[5]))


@contextmanager
def data_folder(kind: str, work: Path, size: int) -> Iterator[Path]:
    if kind == "host":
        yield work
        return
    with loop_filesystem(kind, work, size=4 * size + 2 * GIB) as mount:
        yield mount


def measure(
    kind: str, work: Path, path: Path, size: int, link: PathModel | None, variants: list[Variant], reps: int
) -> Results:
    results = Results()
    with data_folder(kind, work, size) as folder:
        server = RunningServer(SERVER, folder)
        relay = RelayProcess(link, ("127.0.0.1", server.port)) if link is not None else None
        try:
            endpoint = (relay.origin() if relay else f"http://127.0.0.1:{server.port}") + "/files/"
            for _ in range(reps):
                for variant in variants:
                    results.add(variant, run_once(server, endpoint, variant, path, size))
        finally:
            if relay is not None:
                relay.stop()
            server.stop()
    return results


def write_log(path: Path, size: int) -> None:
    """An application log of ``size`` bytes: timestamps, levels, ids and numbers that vary line by line."""
    levels = ("INFO", "INFO", "INFO", "WARN", "DEBUG")
    with path.open("w") as out:
        written, n = 0, 0
        while written < size:
            lines = []
            for _ in range(10_000):
                lines.append(f"2026-12-01T{n // 3600 % 24:02d}:{n // 60 % 60:02d}:{n % 60:02d}.{n * 7919 % 1000:03d}Z"
                             f" {levels[n % 5]} worker-{n % 16} upload={n * 2654435761 % 2**32:08x}"
                             f" offset={n * 65536} bytes={n * 977 % 100000} took={n * 31 % 997}ms\n")  # fmt: skip
                n += 1
            block = "".join(lines)[: size - written]
            out.write(block)
            written += len(block)


def table(results: Results, size: int) -> list[str]:
    lines = [
        "| client | parts | median s | MB/s | vs 1 part | merge s (median) | shared / copied MiB | runs s |",
        "|---|---:|---:|---:|---:|---:|---|---|",
    ]
    one: dict[tuple[str, str, tuple[str, ...]], float] = {}
    for variant, samples in results.samples.items():
        seconds = statistics.median(s.seconds for s in samples)
        if variant.parts == 1:
            one[(variant.client, variant.http, variant.flags)] = seconds
        base = one.get((variant.client, variant.http, variant.flags))
        merges = [s.merge_s for s in samples if s.merge_s is not None]
        merge = f"{statistics.median(merges):.3f}" if merges else "-"
        last = samples[-1]
        shared = f"{last.shared / MIB:.0f} / {last.copied / MIB:.0f}" if merges else "-"
        runs = ", ".join(f"{s.seconds:.1f}" for s in samples)
        ratio = f"{base / seconds:.2f}x" if base else "-"
        lines.append(
            f"| {variant.label} | {variant.parts} | {seconds:.1f} | {size / seconds / 1e6:.1f} | {ratio} | {merge}"
            f" | {shared} | {runs} |"
        )
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.parallel_links", description=__doc__.split("\n")[0])
    parser.add_argument("--size", default="1GiB")
    parser.add_argument("--reps", type=int, default=2)
    parser.add_argument("--fs", default="ext4,xfs", help="comma list of ext4, xfs, btrfs, host")
    parser.add_argument("--parts", default="1,2,4,6,8")
    parser.add_argument("--links", default="capped,longfat")
    parser.add_argument("--clients", default="tusedge,tus-js,tus-js-aligned")
    parser.add_argument("--sections", default="links,http2,loopback,compression")
    parser.add_argument("--dir", type=Path, default=None, help="work folder (the source file and the images)")
    args = parser.parse_args(argv)
    size = parse_size(args.size)
    parts = [int(n) for n in args.parts.split(",")]
    kinds = args.fs.split(",")
    sections = args.sections.split(",")
    work = Path(tempfile.mkdtemp(prefix="tusedge-parallel-links-", dir=args.dir))
    out = [f"Command: `python -m benchmarks.parallel_links {' '.join(argv if argv is not None else sys.argv[1:])}`\n",
           machine() + "\n"]  # fmt: skip
    try:
        path = work / "source.bin"
        make_random_file(path, size)
        if "links" in sections:
            variants = [variant_of(client, n) for client in args.clients.split(",") for n in parts]
            for name in args.links.split(","):
                for kind in kinds:
                    results = measure(kind, work, path, size, LINKS[name], variants, args.reps)
                    out += [f"\n### {size / MIB:.0f} MiB over the {name} link ({LINKS[name].describe()}), {kind}\n",
                            *table(results, size)]  # fmt: skip
        if "http2" in sections:
            variants = [Variant("tusedge", n, http) for http in ("1.1", "2") for n in (1, 6)]
            kind = kinds[-1]
            results = measure(kind, work, path, size, LINKS["capped"], variants, args.reps)
            out += [f"\n### HTTP/1.1 and HTTP/2: one part against six, capped link ({LINKS['capped'].describe()}),"
                    f" {kind}\n", *table(results, size)]  # fmt: skip
        if "variants" in sections:
            # Side by side on the capped link: the client's defaults (per-PATCH and whole-file SHA-256 checked by
            # the server) against no verification, and HTTP/2 with all parts on one connection against one each.
            kind = kinds[-1]
            quiet = UNVERIFIED
            variants = [Variant("tusedge", n) for n in (1, 4, 6)]
            variants += [Variant("tusedge", n, flags=quiet) for n in (1, 4, 6)]
            variants += [Variant("tusedge", 6, "2", ("--connections", "1")), Variant("tusedge", 6, "2")]
            results = measure(kind, work, path, size, LINKS["capped"], variants, args.reps)
            out += [f"\n### Verification and HTTP/2 connections, capped link ({LINKS['capped'].describe()}), {kind}\n",
                    *table(results, size)]  # fmt: skip
        if "loopback" in sections:
            for kind in kinds:
                variants = [Variant("tusedge", n) for n in (1, 4)]
                results = measure(kind, work, path, size, None, variants, max(3, args.reps))
                out += [f"\n### {size / MIB:.0f} MiB over plain loopback (no link model), {kind}\n",
                        *table(results, size)]  # fmt: skip
        if "compression" in sections:
            log = work / "app.log"
            write_log(log, size)
            kind = kinds[-1]
            for name, file in (("compressible log", log), ("incompressible", path)):
                variants = [Variant("tusedge", 1), Variant("tusedge", 1, flags=("--compress", "auto"))]
                results = measure(kind, work, file, size, LINKS["capped"], variants, args.reps)
                out += [f"\n### --compress auto, {name} file of {size / MIB:.0f} MiB, capped link"
                        f" ({LINKS['capped'].describe()}), {kind}\n", *table(results, size)]  # fmt: skip
        print("\n".join(out))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
