"""The tusedge client (``tusedge upload``) uploading one file as 1, 2, 4 and 8 parallel partial uploads to
a local tusedge server: MB/s, the client's CPU time and peak memory, side by side in one run.

    python -m benchmarks.client_parallel [--size 2GiB] [--reps 3] [--parallel 1,2,4,8] [--memory-size 6GiB]

Each upload is the CLI in a child process (``--no-resume --quiet``), so CPU and peak RSS come from
``wait4``'s rusage of exactly that process. Runs go round-robin across the variants; figures are medians.
Every upload is checked complete (HEAD: Upload-Offset == size, waiting while a final upload has none yet:
the server is still merging) and deleted before the next one. The last rows compare peak memory at a second,
larger file size (memory must not grow with the file) and show what the checksums (per-PATCH
Upload-Checksum and the whole-file digest) cost.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from benchmarks.__main__ import machine
from benchmarks.measure import cpu_seconds
from benchmarks.servers import TUSEDGE, RunningServer
from benchmarks.workloads import GIB, MIB, make_random_file
from tusedge.config import parse_size

TUS = {"Tus-Resumable": "1.0.0"}


@dataclass(frozen=True)
class Variant:
    label: str
    parallel: int
    source: str  # "main" or "memory"
    flags: tuple[str, ...] = ()


@dataclass
class Sample:
    seconds: float
    client_cpu_s: float
    client_rss: int  # bytes
    server_cpu_s: float


def run_once(server: RunningServer, variant: Variant, path: Path, size: int) -> Sample:
    cmd = [sys.executable, "-m", "tusedge", "upload", str(path), server.endpoint, "--parallel", str(variant.parallel),
           "--no-resume", "--quiet", *variant.flags]  # fmt: skip
    server_cpu = cpu_seconds(server.pid)
    started = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.monotonic() - started
    assert proc.stdout is not None and proc.stderr is not None
    url, errors = proc.stdout.read().strip(), proc.stderr.read()
    proc.stdout.close()
    proc.stderr.close()
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed: {errors}")
    server_cpu = cpu_seconds(server.pid) - server_cpu
    check_complete(url, size)
    deleted = httpx.delete(url, headers=TUS, timeout=60)
    if deleted.status_code != 204:  # parts and final would stay on the disk and fill it over the runs
        raise RuntimeError(f"DELETE {url}: {deleted.status_code} {deleted.text}")
    return Sample(seconds, usage.ru_utime + usage.ru_stime, usage.ru_maxrss * 1024, server_cpu)


def check_complete(url: str, size: int, timeout: float = 600) -> None:
    """HEAD the upload until it reports Upload-Offset == size; a final upload has no Upload-Offset while the
    server is still merging its parts, so wait then."""
    deadline = time.monotonic() + timeout
    while True:
        head = httpx.head(url, headers=TUS, timeout=60)
        offset = head.headers.get("Upload-Offset")
        if head.status_code == 200 and offset == str(size):
            return
        if head.status_code != 200 or offset is not None or time.monotonic() > deadline:
            raise RuntimeError(f"{url} is not complete: {head.status_code} {dict(head.headers)}")
        time.sleep(0.1)


def table(variants: list[Variant], samples: dict[Variant, list[Sample]], sizes: dict[str, int]) -> list[str]:
    lines = [
        "| variant | file | MB/s | client CPU s | client CPU s/GiB | client peak RSS | server CPU s |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for v in variants:
        s = samples[v]
        size = sizes[v.source]
        seconds = statistics.median(x.seconds for x in s)
        cpu = statistics.median(x.client_cpu_s for x in s)
        rss = statistics.median(x.client_rss for x in s)
        server = statistics.median(x.server_cpu_s for x in s)
        lines.append(
            f"| {v.label} | {size / MIB:.0f} MiB | {size / seconds / 1e6:.0f} | {cpu:.2f} | {cpu / (size / GIB):.2f}"
            f" | {rss / MIB:.0f} MiB | {server:.2f} |"
        )
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.client_parallel", description=__doc__.split("\n")[0])
    parser.add_argument("--size", default="2GiB")
    parser.add_argument("--memory-size", default="6GiB", help="second file size, to compare peak memory")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--parallel", default="1,2,4,8")
    parser.add_argument("--dir", type=Path, default=None, help="work folder (on the disk to measure)")
    args = parser.parse_args(argv)
    sizes = {"main": parse_size(args.size), "memory": parse_size(args.memory_size)}
    counts = [int(n) for n in args.parallel.split(",")]
    variants = [Variant(f"--parallel {n}", n, "main") for n in counts]
    variants.append(Variant(f"--parallel {counts[-1]}", counts[-1], "memory"))
    variants.append(Variant(f"--parallel {counts[-1]} --checksum none --no-digest", counts[-1], "main",
                            ("--checksum", "none", "--no-digest")))  # fmt: skip
    work = Path(tempfile.mkdtemp(prefix="tusedge-client-bench-", dir=args.dir))
    server = None
    try:
        paths = {name: work / f"{name}.bin" for name in sizes}
        for name, path in paths.items():
            make_random_file(path, sizes[name])
        server = RunningServer(TUSEDGE, work)
        samples: dict[Variant, list[Sample]] = {v: [] for v in variants}
        for _ in range(args.reps):
            for v in variants:
                samples[v].append(run_once(server, v, paths[v.source], sizes[v.source]))
        out = [
            f"Command: `python -m benchmarks.client_parallel {' '.join(argv if argv is not None else sys.argv[1:])}`\n",
            machine() + "\n",
            f"Medians of {args.reps}, variants measured round-robin in one run; the client and a durable tusedge",
            "server (its defaults: fsync; per-PATCH and whole-file SHA-256 verified) on one machine, over loopback.\n",
            *table(variants, samples, sizes),
        ]
        print("\n".join(out))
    finally:
        if server is not None:
            server.stop()
        subprocess.run(["rm", "-rf", str(work)], check=False)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
