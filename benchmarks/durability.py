"""What crash-loss checkpoints cost (docs/durability.md): the same upload through tusedge with checkpoints
off, by bytes only (the old 64 MiB, and 8 MiB), time-paced (the default: 8 MiB and at most one a second) and
without fsync at all, side by side in one run, in rotated order so drift on a shared machine hits all alike.

Two workloads, each one PATCH of a random file sent with sendfile (benchmarks/sender.py):
- full speed: loopback, as fast as the server takes it (MB/s, median of the rounds);
- capped: the server reads the body at ``--rate`` (``--client-bandwidth-bytes``), like a fast client on a
  real link: throughput is the cap, so the cost shows as server CPU and fsyncs.

The fsync count of a PATCH is its checkpoints (``tusedge_checkpoints_total``) plus the one at its end; the
bytes a ``kill -9`` would re-send are bounded by the variant's policy (worst case in the last column).

    flock /tmp/tusedge-bench.lock python -m benchmarks.durability [--size 1GiB] [--capped-size 512MiB]
        [--rate 64MiB] [--rounds 3] [--dir PATH]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from benchmarks.measure import cpu_seconds
from benchmarks.sender import create, patch_from_file
from benchmarks.servers import RunningServer, ServerSpec, _tusedge
from benchmarks.workloads import make_random_file
from tusedge.config import parse_size

MIB = 1024 * 1024


@dataclass(frozen=True)
class Variant:
    name: str
    flags: tuple[str, ...]
    worst_loss: str  # what a kill -9 may re-send, at rate R


VARIANTS = [
    Variant("checkpoints off (one fsync at the end)", ("--commit-interval-bytes", "0"), "the whole PATCH"),
    Variant("every 64 MiB (the old default)", ("--commit-interval-bytes", "64MiB", "--commit-interval-s", "0"),
            "64 MiB"),
    Variant("every 8 MiB", ("--commit-interval-bytes", "8MiB", "--commit-interval-s", "0"), "8 MiB"),
    Variant("8 MiB and at most 1/s (default)", (), "max(1 s x R, 8 MiB)"),
    Variant("--no-fsync (no durability)", ("--no-fsync",), "0 on kill -9; anything on power loss"),
]  # fmt: skip


@dataclass
class Run:
    seconds: float
    cpu_s: float
    checkpoints: float


def checkpoints(server: RunningServer) -> float:
    text = httpx.get(f"http://127.0.0.1:{server.port}/metrics", timeout=30).text
    for line in text.splitlines():
        if line.startswith("tusedge_checkpoints_total "):
            return float(line.split()[1])
    return 0.0


def one_patch(variant: Variant, work: Path, source: Path, size: int, rate: int) -> Run:
    flags = [*variant.flags, "--max-size-bytes", "0"]
    if rate:
        flags += ["--client-bandwidth-bytes", str(rate)]
    server = RunningServer(ServerSpec(variant.name, _tusedge(*flags), durable=True), work)
    try:
        url = create(server.endpoint, size)
        cpu0 = cpu_seconds(server.pid)
        started = time.perf_counter()
        patch_from_file(url, str(source), 0, size, 0)
        elapsed = time.perf_counter() - started
        return Run(elapsed, cpu_seconds(server.pid) - cpu0, checkpoints(server))
    finally:
        server.stop()


def table(title: str, runs: dict[str, list[Run]], size: int, baseline: str) -> None:
    base = statistics.median(size / r.seconds for r in runs[baseline])
    print(f"\n{title}\n")
    print("| variant | MB/s (median) | vs default | server CPU s | fsyncs per PATCH | kill -9 re-sends at most |")
    print("| --- | --- | --- | --- | --- | --- |")
    for variant in VARIANTS:
        rs = runs[variant.name]
        rate = statistics.median(size / r.seconds for r in rs)
        fsyncs = "0" if "--no-fsync" in variant.flags else f"{statistics.median(r.checkpoints for r in rs) + 1:.0f}"
        cpu = statistics.median(r.cpu_s for r in rs)
        print(
            f"| {variant.name} | {rate / 1e6:.0f} | {rate / base:.2f} | {cpu:.2f} | {fsyncs} | {variant.worst_loss} |"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.durability")
    parser.add_argument("--size", default="1GiB", help="bytes of the full-speed PATCH")
    parser.add_argument("--capped-size", default="512MiB", help="bytes of the capped PATCH")
    parser.add_argument("--rate", default="64MiB", help="the cap, bytes/s (0: skip the capped workload)")
    parser.add_argument("--rounds", type=int, default=3, help="full-speed runs per variant (capped: one)")
    parser.add_argument("--dir", type=Path, default=None, help="folder for the data (default: a temp folder)")
    args = parser.parse_args(argv)
    size, capped, rate = parse_size(args.size), parse_size(args.capped_size), parse_size(args.rate)
    work = Path(tempfile.mkdtemp(prefix="tusedge-bench-durability-", dir=args.dir))
    source = work / "source.bin"
    make_random_file(source, max(size, capped))
    print(f"load average before: {os.getloadavg()[0]:.1f}; data in {work}")
    fast: dict[str, list[Run]] = {v.name: [] for v in VARIANTS}
    for round_ in range(args.rounds):
        order = VARIANTS[round_ % len(VARIANTS) :] + VARIANTS[: round_ % len(VARIANTS)]
        for variant in order:
            fast[variant.name].append(one_patch(variant, work, source, size, 0))
    default = VARIANTS[3].name
    table(f"Full speed: one PATCH of {size / MIB:.0f} MiB, {args.rounds} rounds", fast, size, default)
    if rate:
        slow = {v.name: [one_patch(v, work, source, capped, rate)] for v in VARIANTS}
        table(f"Capped at {rate / MIB:.0f} MiB/s: one PATCH of {capped / MIB:.0f} MiB, one run", slow, capped, default)
    print(f"\nload average after: {os.getloadavg()[0]:.1f}")
    source.unlink()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
