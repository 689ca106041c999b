"""Merge benchmark (issues 3 and 15): time to merge N partial uploads totalling SIZE into one final upload,
against ``cp`` (+ fsync) of a single upload of the same bytes on the same file system, in the same run; and
the server's user-space CPU during the merge (targets: no slower than cp on ext4, < 0.1 s for 2 GiB in 8
parts on XFS, user CPU near zero).

    python -m benchmarks.merge_vs_cp [--size-gib 4] [--parts 4] [--reps 3] [--dir DIR] [--fs host,ext4,xfs,btrfs]

``--fs host`` is the work folder's own disk; ``ext4``, ``xfs`` and ``btrfs`` are fresh loop-mounted images
made in the work folder (benchmarks/loopfs.py, root only). Parts are cut as ``tusedge upload`` cuts them
(tusedge.client.boundaries, 1 MiB units), so a file system with reflinks can share their blocks. ``cp`` is
coreutils' own: since coreutils 9.0 it reflinks on XFS and btrfs too (``--reflink=auto``).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

from benchmarks.loopfs import loop_filesystem
from tusedge.client.boundaries import split

GIB = 1024**3
CLK_TCK = os.sysconf("SC_CLK_TCK")
TUS = {"Tus-Resumable": "1.0.0"}


def cpu_seconds(pid: int) -> tuple[float, float]:
    """(user, system) CPU seconds of a process from /proc/<pid>/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) / CLK_TCK, int(fields[12]) / CLK_TCK


def start_server(data_dir: Path) -> tuple[subprocess.Popen[str], str]:
    data_dir.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tusedge",
            "serve",
            "--port",
            "0",
            "--data-dir",
            str(data_dir),
            "--finish-wait-s",
            "3600",
            "--log-level",
            "warning",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.stdout is not None
    for line in proc.stdout:
        match = re.search(r"Running on (http://\S+)", line)
        if match:
            return proc, match.group(1) + "/files/"
    raise RuntimeError("server did not start")


def file_chunks(path: Path, offset: int, length: int, block: int = 4 * 1024 * 1024) -> Iterator[bytes]:
    with path.open("rb", buffering=0) as fh:
        fh.seek(offset)
        left = length
        while left:
            data = fh.read(min(block, left))
            if not data:
                return
            left -= len(data)
            yield data


def make_source(path: Path, size: int) -> None:
    block = os.urandom(16 * 1024 * 1024)
    with path.open("wb") as out:
        written = 0
        while written < size:
            n = min(len(block), size - written)
            out.write(block[:n])
            written += n
        out.flush()
        os.fsync(out.fileno())


def upload(client: httpx.Client, endpoint: str, source: Path, offset: int, length: int, concat: bool) -> str:
    headers = {**TUS, "Upload-Length": str(length)}
    if concat:
        headers["Upload-Concat"] = "partial"
    url = client.post(endpoint, headers=headers).headers["Location"]
    patched = client.patch(
        url,
        content=file_chunks(source, offset, length),
        headers={**TUS, "Upload-Offset": "0", "Content-Type": "application/offset+octet-stream"},
    )
    assert patched.status_code == 204, patched.text
    return url


def merge_seconds_sum(client: httpx.Client, endpoint: str) -> float:
    """The server's own count of time spent joining parts (tusedge_merge_duration_seconds_sum)."""
    text = client.get(endpoint.removesuffix("/files/") + "/metrics").text
    for line in text.splitlines():
        if line.startswith("tusedge_merge_duration_seconds_sum"):
            return float(line.split()[-1])
    return 0.0


def merge_final(
    client: httpx.Client, endpoint: str, urls: list[str], size: int, pid: int
) -> tuple[float, float, float, float]:
    """Time the final POST (it waits for the merge and its fsync); return (seconds, user CPU, system CPU,
    the join itself as the server timed it: parts joined and the final fdatasynced)."""
    user0, sys0 = cpu_seconds(pid)
    joined0 = merge_seconds_sum(client, endpoint)
    start = time.perf_counter()
    final = client.post(endpoint, headers={**TUS, "Upload-Concat": "final;" + " ".join(urls)})
    elapsed = time.perf_counter() - start
    user1, sys1 = cpu_seconds(pid)
    assert final.status_code == 201, final.text
    head = client.head(final.headers["Location"], headers=TUS)
    assert head.headers.get("Upload-Offset") == str(size), "merge did not finish within the request"
    joined = merge_seconds_sum(client, endpoint) - joined0
    client.delete(final.headers["Location"], headers=TUS)
    return elapsed, user1 - user0, sys1 - sys0, joined


def cp_once(source: Path, target: Path) -> float:
    start = time.perf_counter()
    subprocess.run(["cp", str(source), str(target)], check=True)
    fd = os.open(target, os.O_RDONLY)
    os.fsync(fd)
    os.close(fd)
    elapsed = time.perf_counter() - start
    target.unlink()
    return elapsed


def one_round(
    client: httpx.Client, endpoint: str, source: Path, size: int, parts: int, data_dir: Path, pid: int, cp_first: bool
) -> tuple[tuple[float, float, float, float], float]:
    """Upload the same bytes twice through the server, as N partials and as one upload, so both copies
    read files in the same state (freshly uploaded; the first read of such a file is slower than a
    re-read here), then time the merge of the partials and ``cp`` of the single upload."""
    urls = [upload(client, endpoint, source, start, n, True) for start, n in split(size, parts)]
    whole = upload(client, endpoint, source, 0, size, False)
    os.sync()
    whole_file = data_dir / "uploads" / whole.rsplit("/", 1)[1]
    if cp_first:
        copy = cp_once(whole_file, data_dir / "copy.bin")
        merge = merge_final(client, endpoint, urls, size, pid)
    else:
        merge = merge_final(client, endpoint, urls, size, pid)
        copy = cp_once(whole_file, data_dir / "copy.bin")
    client.delete(whole, headers=TUS)
    return merge, copy


def measure(work: Path, data_dir: Path, source: Path, size: int, parts: int, reps: int) -> list[str]:
    proc, endpoint = start_server(data_dir)
    merges: list[tuple[float, float, float, float]] = []
    copies: list[float] = []
    try:
        with httpx.Client(timeout=3600) as client:
            for rep in range(reps):  # interleaved, alternating order, so both see the same machine
                merge, copy = one_round(client, endpoint, source, size, parts, data_dir, proc.pid, rep % 2 == 0)
                merges.append(merge)
                copies.append(copy)
    finally:
        proc.terminate()
        proc.wait(30)
    merge_s = statistics.median(m[0] for m in merges)
    cp_s = statistics.median(copies)
    user = statistics.median(m[1] for m in merges)
    system = statistics.median(m[2] for m in merges)
    joined = statistics.median(m[3] for m in merges)
    runs = ", ".join(f"{m[0]:.3f}" for m in merges)
    joins = ", ".join(f"{m[3]:.4f}" for m in merges)
    cps = ", ".join(f"{c:.3f}" for c in copies)
    return [f"{joined:.4f} s ({joins})", f"{merge_s:.3f} s ({runs})", f"{cp_s:.3f} s ({cps})", f"{merge_s / cp_s:.2f}",
            f"{user:.2f} / {system:.2f}"]  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--size-gib", type=float, default=4.0)
    parser.add_argument("--parts", type=int, default=4)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--dir", type=Path, default=None, help="work folder on the disk to measure")
    parser.add_argument("--fs", default="host", help="comma list of host, ext4, xfs, btrfs")
    args = parser.parse_args(argv)
    size = int(args.size_gib * GIB)
    work = Path(tempfile.mkdtemp(prefix="tusedge-merge-", dir=args.dir))
    rows = []
    try:
        source = work / "source.bin"
        make_source(source, size)
        for kind in args.fs.split(","):
            if kind == "host":
                rows.append([kind, *measure(work, work / "data", source, size, args.parts, args.reps)])
                continue
            with loop_filesystem(kind, work, size=3 * size + 2 * GIB) as mount:
                rows.append([kind, *measure(work, mount / "data", source, size, args.parts, args.reps)])
        print(f"size: {size / GIB:.2f} GiB in {args.parts} parts, reps: {args.reps} (medians; runs in brackets)\n")
        print("| file system | merge: join + fdatasync (server's metric) | final POST (merge + request + state) "
              "| cp + fsync | POST / cp | server CPU user / sys s |")  # fmt: skip
        print("|---|---|---|---|---:|---|")
        for row in rows:
            print("| " + " | ".join(row) + " |")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
