"""``python -m benchmarks``: tusedge against its peers, side by side in one run, figures to docs/benchmarks.md.

Servers run at the same time on 127.0.0.1 and are measured in turn, round-robin per repetition, so a noisy
moment on this shared machine hits every server alike; tables show medians and tusedge/peer ratios.
"""

from __future__ import annotations

import argparse
import contextlib
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import httpx

from benchmarks.link import NS_ADDR, namespace_link, shape
from benchmarks.servers import (
    PEERS_SPECS,
    TUSEDGE,
    TUSEDGE_NO_ACCESS_LOG,
    TUSEDGE_NO_FSYNC,
    RunningServer,
    ServerSpec,
    tusedge_workers,
)
from benchmarks.workloads import (
    GIB,
    MIB,
    dd_write,
    make_random_file,
    parallel_upload,
    single_upload,
    small_uploads,
    sustained_upload,
)

ROOT = Path(__file__).resolve().parent.parent


def machine() -> str:
    def run(*cmd: str) -> str:
        try:
            return subprocess.run(cmd, capture_output=True, text=True, timeout=10).stdout.strip()
        except (OSError, subprocess.TimeoutExpired):
            return "?"

    mem = next((line for line in Path("/proc/meminfo").read_text().splitlines() if line.startswith("MemTotal")), "")
    disk = run("df", "-h", "/tmp").splitlines()[-1:]
    return "\n".join(
        [
            f"- date: {time.strftime('%Y-%m-%d %H:%M %Z')}",
            f"- CPU: {run('nproc')} cores ({platform.machine()}), {mem.split(':')[-1].strip()} memory",
            f"- kernel: {platform.release()}; disk: `{disk[0] if disk else '?'}`",
            f"- Python {platform.python_version()}, Node {run('node', '--version')}",
        ]
    )


def med(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks", description=__doc__.split("\n\n")[0] if __doc__ else ""
    )
    parser.add_argument("--quick", action="store_true", help="small sizes, one repetition (a smoke run)")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--size-mib", type=int, default=1024, help="single-upload size")
    parser.add_argument(
        "--big",
        action="store_true",
        help="also 4 GiB single uploads, and a durable 4 GiB upload against dd conv=fdatasync",
    )
    parser.add_argument("--sustained", type=int, default=0, metavar="GIB", help="also a sustained upload of GIB GiB")
    parser.add_argument("--no-peers", action="store_true", help="tusedge only")
    parser.add_argument("--access-log-off-too", action="store_true",
                        help="also tusedge --access-log off (single and small): the access log's cost")  # fmt: skip
    parser.add_argument(
        "--only", action="append", choices=["ceilings", "single", "small", "parallel", "link", "transports"], default=[]
    )
    parser.add_argument("--small-count", type=int, default=1000)
    parser.add_argument("--parallel-mib", type=int, default=2048)
    parser.add_argument("--dir", type=Path, default=None, help="work folder on the disk to measure")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks.md")
    args = parser.parse_args(argv)
    if args.quick:
        args.reps, args.size_mib, args.small_count, args.parallel_mib = 1, 8, 20, 16
    only = set(args.only) or {"ceilings", "single", "small", "parallel", "link", "transports"}
    size = args.size_mib * MIB
    specs: list[ServerSpec] = [TUSEDGE, TUSEDGE_NO_FSYNC] + ([] if args.no_peers else PEERS_SPECS)
    if args.access_log_off_too:
        specs.insert(1, TUSEDGE_NO_ACCESS_LOG)
    work = Path(tempfile.mkdtemp(prefix="tusedge-bench-", dir=args.dir))
    lines: list[str] = []
    try:
        source = work / "source.bin"
        make_random_file(source, max(size, args.parallel_mib * MIB, 4 * GIB if args.big else 0))
        out = lines.append
        out("# Benchmarks\n")
        out(f"Command: `python -m benchmarks {' '.join(argv if argv is not None else sys.argv[1:])}`\n")
        out(machine() + "\n")
        out("Every figure is the median of the repetitions; servers were measured in turn (round-robin) in one run.")
        out("Only tusedge fsyncs before acknowledging bytes (durable); the peers leave them in the page cache,")
        out("so `tusedge --no-fsync` is shown too, for a like-for-like comparison. What the figures mean, and the")
        out("targets they are held against: [performance.md](performance.md).\n")

        if "ceilings" in only:
            plain, durable = [], []
            for _ in range(args.reps):
                plain.append(dd_write(source, work / "dd.bin", durable=False))
                durable.append(dd_write(source, work / "dd.bin", durable=True))
            out(f"## Machine ceilings ({size / MIB:.0f} MiB, dd bs=4M to the same disk)\n")
            out("| what | MB/s |\n| --- | --- |")
            out(f"| dd (page cache) | {size / med(plain) / 1e6:,.0f} |")
            out(f"| dd conv=fdatasync (durable) | {size / med(durable) / 1e6:,.0f} |\n")
            print("\n".join(lines[-5:]), flush=True)

        if "single" in only or "small" in only:
            servers = [RunningServer(spec, work) for spec in specs]
            try:
                if "single" in only:
                    _single(servers, source, size, args.reps, out)
                    if args.big:  # the same workload at 4 GiB, once (each upload is 4 GiB per server and mode)
                        _single(servers, source, 4 * GIB, 1, out)
                if "small" in only:
                    _small(servers, args.small_count, args.reps, out)
            finally:
                for server in servers:
                    server.stop()
        if "parallel" in only:
            _parallel(work, source, args.parallel_mib * MIB, args.reps, out)
        if "transports" in only:
            _transports(work, args.size_mib, out)
        if "link" in only:
            _link(work, source, min(256 * MIB, source.stat().st_size), out)
        if args.big:
            _big(work, source, out)
        if args.sustained:
            _sustained(work, source, source.stat().st_size, args.sustained * GIB, out)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")
    print(f"\nwritten to {args.out}")
    return 0


def _single(servers: list[RunningServer], source: Path, size: int, reps: int, out: Callable[[str], None]) -> None:
    modes = [("one PATCH", size), ("64 MiB PATCHes", 64 * MIB)]
    results: dict[tuple[str, str], list[tuple[float, float, int]]] = defaultdict(list)
    for _ in range(reps):
        for mode, patch_bytes in modes:
            for server in servers:
                sample = single_upload(server, source, size, patch_bytes)
                results[(mode, server.spec.name)].append((sample.mb_per_s(size), sample.cpu_s, sample.peak_rss))
                print(f"single {mode} {server.spec.name}: {sample.mb_per_s(size):.0f} MB/s", flush=True)
    out(f"## Single upload of {size / MIB:.0f} MiB over HTTP/1.1\n")
    out("Sender: plain HTTP/1.1 with `os.sendfile` from a file in the page cache (not the bottleneck).\n")
    out("| server | mode | MB/s | server CPU s/GiB | server peak RSS | tusedge / this (MB/s) |")
    out("| --- | --- | --- | --- | --- | --- |")
    for mode, _ in modes:
        ours = med([r[0] for r in results[(mode, "tusedge")]])
        for server in servers:
            rows = results[(mode, server.spec.name)]
            speed = med([r[0] for r in rows])
            cpu = med([r[1] for r in rows]) / (size / GIB)
            rss = med([float(r[2]) for r in rows]) / MIB
            out(f"| {server.spec.name} | {mode} | {speed:,.0f} | {cpu:.2f} | {rss:.0f} MiB | {ours / speed:.2f} |")
    out("")


def _small(servers: list[RunningServer], count: int, reps: int, out: Callable[[str], None]) -> None:
    results: dict[str, list[tuple[float, float]]] = defaultdict(list)
    bad: dict[str, int] = defaultdict(int)
    failed: dict[str, int] = defaultdict(int)
    for _ in range(reps):
        for server in servers:
            try:
                rate, cpu_ms, bad_heads = small_uploads(server, count, 32)
            except httpx.HTTPError as exc:  # a server that drops a connection loses this repetition, not the run
                failed[server.spec.name] += 1
                print(f"small {server.spec.name}: failed ({exc!r})", flush=True)
                continue
            results[server.spec.name].append((rate, cpu_ms))
            bad[server.spec.name] += bad_heads
            print(f"small {server.spec.name}: {rate:.0f}/s", flush=True)
    out(f"## Many small uploads: {count} x 64 KiB, 32 at a time (POST + PATCH + HEAD)\n")
    out("Client: httpx (async) in the benchmark process, on the same 2 cores as the server.\n")
    out("| server | uploads/s | server CPU ms per upload | tusedge / this | HEADs without the full offset |")
    out("| --- | --- | --- | --- | --- |")
    ours = med([r[0] for r in results["tusedge"]])
    for server in servers:
        rate = med([r[0] for r in results[server.spec.name]])
        cpu = med([r[1] for r in results[server.spec.name]])
        out(f"| {server.spec.name} | {rate:,.0f} | {cpu:.1f} | {ours / rate:.2f} | {bad[server.spec.name]} |")
    if failed:
        lost = ", ".join(f"{name} {n} of {reps}" for name, n in failed.items())
        out(f"\nRepetitions lost to a failed request (a connection the server dropped): {lost}.")
    out("")


def _parallel(work: Path, source: Path, size: int, reps: int, out: Callable[[str], None]) -> None:
    rows = []
    for workers in (1, 2):
        server = RunningServer(tusedge_workers(workers), work)
        try:
            for parts in (1, 2, 4, 8):
                samples = [parallel_upload(server, source, size, parts, 64 * MIB) for _ in range(reps)]
                total, merge = med([s[0] for s in samples]), med([s[1] for s in samples])
                rows.append((workers, parts, size / total / 1e6, merge))
                print(f"parallel workers={workers} parts={parts}: {size / total / 1e6:.0f} MB/s", flush=True)
        finally:
            server.stop()
    out(f"## Parallel partial uploads + concatenation of {size / MIB:.0f} MiB (tusedge)\n")
    out("Parts are sent at once (one connection each, 64 MiB PATCHes), then the final POST, which waits for the")
    out("merge (copy_file_range + fdatasync). MB/s is over the whole: parts and merge.\n")
    out("| workers | parts | MB/s incl. merge | final POST (merge) s |\n| --- | --- | --- | --- |")
    for workers, parts, speed, merge in rows:
        out(f"| {workers} | {parts} | {speed:,.0f} | {merge:.2f} |")
    out("")


def _transports(work: Path, size_mib: int, out: Callable[[str], None]) -> None:
    """tusedge over HTTP/1.1, HTTP/2 and HTTP/3 (built-in in 1 and 2 workers, and behind Caddy), our client and
    Chromium, by benchmarks/transports.py."""
    mib = max(1, min(size_mib, 128))  # built-in HTTP/3 runs at a few MB/s on a loaded machine
    command = [sys.executable, "-m", "benchmarks.transports", "--size-mib", str(mib), "--dir", str(work)]
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, timeout=3600)
    if done.returncode != 0:
        raise RuntimeError(f"benchmarks.transports failed:\n{done.stdout}\n{done.stderr}")
    table = done.stdout.split("\n\n", 1)[-1].strip()
    out(f"## Transports (tusedge over TLS, {mib} MiB per scenario)\n")
    out("MB/s and server CPU per GiB side by side (benchmarks/transports.py; analysis in http2-http3.md).\n")
    out(table + "\n")


def _link(work: Path, source: Path, size: int, out: Callable[[str], None]) -> None:
    """1 vs 4 parallel parts over a shaped link into a network namespace (benchmarks/link.py)."""
    rows = []
    with contextlib.ExitStack() as stack:
        try:
            wrapper = stack.enter_context(namespace_link())
        except (OSError, subprocess.CalledProcessError) as exc:
            out(f"## Constrained link\n\nSkipped: network namespaces are not available here ({exc}).\n")
            return
        server = RunningServer(TUSEDGE, work, host=NS_ADDR, wrapper=wrapper)
        stack.callback(server.stop)
        for kind, rate in (("tbf", 400), ("tbf", 100)):
            shape(kind, rate)
            for parts in (1, 4):
                seconds, _ = parallel_upload(server, source, size, parts, 64 * MIB)
                rows.append((kind, rate, parts, size / seconds / 1e6))
                print(f"link {kind} {rate}mbit parts={parts}: {size / seconds / 1e6:.1f} MB/s", flush=True)
    out(f"## Constrained link: {size / MIB:.0f} MiB over a shaped veth into a network namespace\n")
    out("`tbf` shapes the whole link, like a slow uplink. Per-flow limits (`fq maxrate`), which is where parallel")
    out("uploads gain throughput, and added delay (`netem`) are not available in this kernel, so this shows the")
    out("other half of the story: on a link limited as a whole, 4 parts reach the same rate as 1, and what")
    out("parallel uploads cost there (more requests, the merge) is small.\n")
    out("| shaping | rate | parts | MB/s incl. merge |\n| --- | --- | --- | --- |")
    for kind, rate, parts, speed in rows:
        out(f"| {kind} (whole link) | {rate} Mbit/s | {parts} | {speed:,.1f} |")
    out("")


def _sustained(work: Path, source: Path, source_size: int, total: int, out: Callable[[str], None]) -> None:
    free = shutil.disk_usage(work).free
    if free < total + GIB:
        out(
            f"## Sustained upload\n\nSkipped: {total / GIB:.0f} GiB needs that much free disk, "
            f"{free / GIB:.0f} GiB free.\n"
        )
        return
    server = RunningServer(TUSEDGE, work)
    try:
        samples = sustained_upload(server, source, source_size, total)
    finally:
        server.stop()
    out(f"## Sustained upload of {total / GIB:.0f} GiB in one PATCH (tusedge, durable)\n")
    out("Progress is the offset the server has committed (HEAD every 10 s); RSS of the server process.\n")
    out("| t (s) | MB/s in the window | server RSS |\n| --- | --- | --- |")
    for t, speed, rss in samples:
        out(f"| {t:.0f} | {speed:,.0f} | {rss / MIB:.0f} MiB |")
    out("")


def _big(work: Path, source: Path, out: Callable[[str], None]) -> None:
    size = 4 * GIB
    dd = dd_write(source, work / "dd.bin", durable=True)
    server = RunningServer(TUSEDGE, work)
    try:
        sample = single_upload(server, source, size, size)
    finally:
        server.stop()
    out("## Durable 4 GiB upload against dd conv=fdatasync\n")
    out("| what | seconds | MB/s | server peak RSS |\n| --- | --- | --- | --- |")
    out(f"| dd conv=fdatasync | {dd:.2f} | {size / dd / 1e6:,.0f} | |")
    out(
        f"| tusedge, one PATCH | {sample.seconds:.2f} | {sample.mb_per_s(size):,.0f} "
        f"| {sample.peak_rss / MIB:.0f} MiB |"
    )
    out(f"\ntusedge / dd time: {sample.seconds / dd:.2f} (target: within 1.25)\n")


if __name__ == "__main__":
    sys.exit(main())
