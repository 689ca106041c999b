"""``python -m benchmarks.checkouts SHA...``: the single-upload rows of several commits side by side in one run.

Each commit is checked out once with ``git worktree add --detach /tmp/bisect-<sha> <sha>`` (kept for the next
run) and served by ``python -m tusedge serve`` from its own tree (this interpreter, ``PYTHONPATH`` set to the
checkout, so the checkout's ``tusedge`` is imported and the venv's dependencies are shared). All servers run
at once and are measured in turn, round-robin per repetition and mode (each repetition starting one commit
later, so none always follows another's writes), so a noisy moment on this shared machine hits every commit
alike; the table gives medians of MB/s and server CPU s/GiB, and each row's ratio
to the first commit's. Used to bisect a throughput loss (docs/performance.md, issue 12's 1 GiB rows).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

from benchmarks.servers import ROOT, RunningServer, ServerSpec
from benchmarks.workloads import GIB, MIB, make_random_file, single_upload, small_uploads


def checkout(sha: str) -> Path:
    """A detached worktree of ``sha`` under /tmp (made once, reused)."""
    full = subprocess.run(["git", "-C", str(ROOT), "rev-parse", sha], capture_output=True, text=True, check=True)
    path = Path(tempfile.gettempdir()) / f"bisect-{full.stdout.strip()[:7]}"
    if not (path / "tusedge").is_dir():
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(path), sha], check=True,
                       capture_output=True)  # fmt: skip
    return path


def spec_for(name: str, tree: Path, flags: list[str]) -> ServerSpec:
    def command(port: int, data: Path) -> tuple[list[str], dict[str, str]]:
        args = ["env", "-C", str(tree), sys.executable, "-m", "tusedge", "serve", "--port", str(port)]
        args += ["--data-dir", str(data), "--log-level", "warning", "--finish-wait-s", "3600", *flags]
        return args, {"PYTHONPATH": str(tree)}

    return ServerSpec(name, command, durable=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.checkouts", description=__doc__.split("\n\n")[0])
    parser.add_argument("commits", nargs="+", help="commits (or 'worktree' for this tree as it is)")
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--patch-mib", type=int, action="append", help="PATCH size (0: one PATCH); repeatable")
    parser.add_argument("--flag", action="append", default=[], help="extra serve flag for every commit")
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()))
    parser.add_argument("--small", type=int, metavar="COUNT", help="instead: COUNT small uploads per rep")
    args = parser.parse_args(argv)
    if args.small:
        return small_main(args)
    modes = args.patch_mib if args.patch_mib else [0, 64]
    size = args.size_mib * MIB
    work = Path(tempfile.mkdtemp(prefix="tusedge-checkouts-", dir=args.work))
    source = work / "source.bin"
    make_random_file(source, size)
    servers: list[RunningServer] = []
    try:
        for commit in args.commits:
            tree = ROOT if commit == "worktree" else checkout(commit)
            servers.append(RunningServer(spec_for(commit, tree, args.flag), work))
        seconds: dict[tuple[str, int], list[float]] = defaultdict(list)
        cpu: dict[tuple[str, int], list[float]] = defaultdict(list)
        loads = [os.getloadavg()[0]]
        for rep in range(args.reps):
            for mode in modes:
                for server in servers[rep % len(servers) :] + servers[: rep % len(servers)]:
                    sample = single_upload(server, source, size, mode * MIB if mode else size)
                    seconds[server.spec.name, mode].append(sample.seconds)
                    cpu[server.spec.name, mode].append(sample.cpu_s)
                    print(f"rep {rep} {server.spec.name} {mode or 'one'}: {sample.mb_per_s(size):.0f} MB/s"
                          f" {sample.cpu_s / (size / GIB):.2f} s/GiB", file=sys.stderr, flush=True)  # fmt: skip
            loads.append(os.getloadavg()[0])
        print(f"\n{args.size_mib} MiB, median of {args.reps}, load {min(loads):.1f}-{max(loads):.1f},"
              f" {time.strftime('%Y-%m-%d %H:%M %Z')}\n")  # fmt: skip
        print("| commit | PATCHes | MB/s | server CPU s/GiB | MB/s vs first | CPU vs first |")
        print("| --- | --- | --- | --- | --- | --- |")
        for mode in modes:
            base_rate = base_cpu = 0.0
            for index, server in enumerate(servers):
                rate = size / statistics.median(seconds[server.spec.name, mode]) / 1e6
                per_gib = statistics.median(cpu[server.spec.name, mode]) / (size / GIB)
                if index == 0:
                    base_rate, base_cpu = rate, per_gib
                label = f"{mode} MiB" if mode else "one"
                print(f"| {server.spec.name} | {label} | {rate:.0f} | {per_gib:.2f} | {rate / base_rate:.2f}x"
                      f" | {per_gib / base_cpu:.2f}x |")  # fmt: skip
    finally:
        for server in servers:
            server.stop()
        source.unlink(missing_ok=True)
    return 0


def small_main(args: argparse.Namespace) -> int:
    """The small-upload rows (``--only small``) of each commit side by side: uploads/s and server CPU per upload."""
    work = Path(tempfile.mkdtemp(prefix="tusedge-checkouts-", dir=args.work))
    servers: list[RunningServer] = []
    try:
        for commit in args.commits:
            tree = ROOT if commit == "worktree" else checkout(commit)
            servers.append(RunningServer(spec_for(commit, tree, args.flag), work))
        rates: dict[str, list[float]] = defaultdict(list)
        cpu: dict[str, list[float]] = defaultdict(list)
        loads = [os.getloadavg()[0]]
        for server in servers:
            small_uploads(server, 32, 32)  # warm-up
        for rep in range(args.reps):
            for server in servers[rep % len(servers) :] + servers[: rep % len(servers)]:
                rate, ms, _bad = small_uploads(server, args.small, 32)
                rates[server.spec.name].append(rate)
                cpu[server.spec.name].append(ms)
                print(f"rep {rep} {server.spec.name}: {rate:.0f}/s {ms:.2f} ms", file=sys.stderr, flush=True)
            loads.append(os.getloadavg()[0])
        print(f"\n{args.small} x 64 KiB, 32 at a time, median of {args.reps}, load {min(loads):.1f}-{max(loads):.1f},"
              f" {time.strftime('%Y-%m-%d %H:%M %Z')}\n")  # fmt: skip
        print("| commit | uploads/s | server CPU ms per upload | CPU vs first |")
        print("| --- | --- | --- | --- |")
        base = statistics.median(cpu[servers[0].spec.name])
        for server in servers:
            ms = statistics.median(cpu[server.spec.name])
            print(f"| {server.spec.name} | {statistics.median(rates[server.spec.name]):.0f} | {ms:.2f} |"
                  f" {ms / base:.2f}x |")  # fmt: skip
    finally:
        for server in servers:
            server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
