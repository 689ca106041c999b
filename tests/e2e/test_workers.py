"""``--workers 2``: two server processes share one data folder and database. Uploads spread over both complete
correctly, an upload continues on the other process, and one writer per upload holds across processes.

To know which process serves a request we look the connection up in the kernel: its server-side socket in
``/proc/net/tcp`` has an inode, and exactly one worker holds a descriptor ``socket:[inode]`` once it accepted it.
"""

from __future__ import annotations

import os
import random
import socket
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from observe import wait_for
from rawhttp import (
    KIB,
    TUS,
    BodySender,
    RawRequest,
    create_upload,
    download,
    head_offset,
    patch,
    patch_headers,
    poll_offset,
    sha256,
)
from server_process import ServerFactory, ServerProcess

LOCK_TIMEOUT_S = 2.0
STALE_LOCK_S = 1.0


def worker_pids(server: ServerProcess) -> list[int]:
    """Hypercorn's worker processes (multiprocessing ``spawn`` children; the resource tracker is not one)."""
    found = subprocess.run(["pgrep", "-P", str(server.pid)], capture_output=True, text=True, timeout=10)
    pids = [int(pid) for pid in found.stdout.split()]
    return [pid for pid in pids if b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes()]


def _accepted_inode(server_port: int, client_port: int) -> int:
    """Inode of the server's end of our connection; 0 until a process has accepted it."""
    local, remote = f"0100007F:{server_port:04X}", f"0100007F:{client_port:04X}"
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[1] == local and fields[2] == remote:
            return int(fields[9])
    return 0


def serving_worker(sock: socket.socket, server: ServerProcess, pids: list[int], timeout_s: float = 5.0) -> int:
    """The worker that accepted the connection ``sock``."""
    client_port = sock.getsockname()[1]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        inode = _accepted_inode(server.port, client_port)
        if inode:
            target = f"socket:[{inode}]"
            for pid in pids:
                for fd in os.listdir(f"/proc/{pid}/fd"):
                    try:
                        if os.readlink(f"/proc/{pid}/fd/{fd}") == target:
                            return pid
                    except FileNotFoundError:
                        continue
        time.sleep(0.02)
    raise AssertionError(f"no worker accepted the connection from port {client_port}")


def connection_per_worker(server: ServerProcess, pids: list[int], attempts: int = 60) -> dict[int, socket.socket]:
    """One open connection accepted by each worker (connections are opened until every worker has one)."""
    chosen: dict[int, socket.socket] = {}
    extra: list[socket.socket] = []
    try:
        for _ in range(attempts):
            sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
            pid = serving_worker(sock, server, pids)
            if pid in chosen:
                extra.append(sock)
            else:
                chosen[pid] = sock
            if len(chosen) == len(pids):
                return chosen
    finally:
        for sock in extra:
            sock.close()
    for sock in chosen.values():
        sock.close()
    raise AssertionError(f"{attempts} connections all went to workers {sorted(chosen)} of {pids}")


def raw_head_offset(sock: socket.socket, url: str) -> int:
    request = RawRequest("HEAD", url, TUS, sock=sock)
    response = request.read_response(has_body=False)
    assert response.status == 200, response
    return int(response.headers["upload-offset"])


def cpu_ticks(pid: int) -> int:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


@pytest.fixture
def two_workers(server_factory: ServerFactory) -> ServerProcess:
    server = server_factory(
        "--workers", "2", "--lock-timeout-s", str(LOCK_TIMEOUT_S), "--stale-lock-s", str(STALE_LOCK_S)
    )  # fmt: skip
    server.wait_for_workers(2)  # both accept connections (a test that wants one on each would otherwise fail)
    return server


def wait_until_read(sock: socket.socket, server: ServerProcess) -> None:
    """Wait until the server process has read everything sent on ``sock``: nothing in our send queue, nothing
    in its receive queue (the tx_queue:rx_queue field of /proc/net/tcp for each end)."""
    client = f"0100007F:{sock.getsockname()[1]:04X}"
    server_end = f"0100007F:{server.port:04X}"

    def drained() -> bool:
        queues = {}
        for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
            fields = line.split()
            if (fields[1], fields[2]) in ((client, server_end), (server_end, client)):
                tx, rx = fields[4].split(":")
                queues[fields[1]] = int(tx, 16) if fields[1] == client else int(rx, 16)
        return len(queues) == 2 and not any(queues.values())

    wait_for(drained, "the server to read every byte sent", timeout_s=10)


def wait_until_locked(server: ServerProcess, url: str) -> None:
    """Wait until a worker holds the upload's lock: its lock file's inode is flocked in /proc/locks."""
    path = server.data_dir / "locks" / (url.rstrip("/").rsplit("/", 1)[1] + ".lock")

    def locked() -> bool:
        if not path.exists():
            return False
        inode = f":{path.stat().st_ino} "
        return any("FLOCK" in line and inode in line for line in Path("/proc/locks").read_text().splitlines())

    wait_for(locked, f"a worker to take the lock of {url}", timeout_s=10)


def test_workers_2_runs_two_processes_and_concurrent_uploads_all_complete(two_workers: ServerProcess) -> None:
    """ours: --workers N runs N processes on one socket, sharing data folder and database. 20 uploads of 1-2 MB,
    6 at a time, each in two PATCH requests on fresh connections, are spread over both processes (each burns CPU
    time on them) and all download with the content sent."""
    pids = worker_pids(two_workers)
    assert len(pids) == 2, f"expected 2 worker processes, found {pids}"
    rng = random.Random(20)
    payloads = [rng.randbytes(rng.randint(1_000_000, 2_000_000)) for _ in range(20)]
    before = {pid: cpu_ticks(pid) for pid in pids}

    def upload(data: bytes) -> tuple[str, str]:
        url = create_upload(two_workers.url, len(data))
        half = len(data) // 2
        for offset, chunk in ((0, data[:half]), (half, data[half:])):
            response = patch(url, offset, chunk)
            assert response.status_code == 204, (response.status_code, response.text)
        return url, sha256(download(url))

    with ThreadPoolExecutor(max_workers=6) as pool:
        results = list(pool.map(upload, payloads))
    assert [digest for _, digest in results] == [sha256(data) for data in payloads]
    assert len({url for url, _ in results}) == len(payloads)
    busy = {pid: cpu_ticks(pid) - before[pid] for pid in pids}
    assert all(ticks >= 3 for ticks in busy.values()), f"CPU ticks per worker during the uploads: {busy}"


def test_upload_cut_off_on_one_worker_continues_on_the_other(two_workers: ServerProcess) -> None:
    """core.patch-partial-body across processes: a PATCH served by worker A is cut off mid-body; worker B's HEAD
    reports exactly the bytes sent, and a PATCH on worker B completes the upload."""
    pids = worker_pids(two_workers)
    connections = connection_per_worker(two_workers, pids)
    first, second = (connections[pid] for pid in pids)
    data = os.urandom(3_000_000)
    sent = 1_111_111
    url = create_upload(two_workers.url, len(data))
    cut = RawRequest("PATCH", url, patch_headers(0, len(data)), sock=first)
    cut.send(data[:sent])
    cut.close()
    deadline = time.monotonic() + 10
    while (offset := raw_head_offset(second, url)) < sent:
        assert time.monotonic() < deadline, f"worker B still reports Upload-Offset {offset}"
        time.sleep(0.05)
    assert offset == sent
    rest = RawRequest("PATCH", url, patch_headers(sent, len(data) - sent), sock=second)
    rest.send(data[sent:])
    response = rest.read_response()
    rest.close()
    assert response.status == 204 and response.headers["upload-offset"] == str(len(data)), response
    assert sha256(download(url)) == sha256(data)


def test_concurrent_patches_on_two_workers_are_refused_without_interleaving(two_workers: ServerProcess) -> None:
    """ours: one writer per upload across processes (flock). While worker A receives a PATCH that streams without
    pause, a PATCH at the same offset on worker B is refused with 423 (or 409) and a one-line reason; its bytes
    are never written, and A's PATCH completes with exactly its body."""
    pids = worker_pids(two_workers)
    connections = connection_per_worker(two_workers, pids)
    first, second = (connections[pid] for pid in pids)
    data = os.urandom(4_000_000)
    intruder = os.urandom(1_000_000)
    url = create_upload(two_workers.url, len(data))
    holder = RawRequest("PATCH", url, patch_headers(0, len(data)), sock=first)
    sender = BodySender(holder, data, rate_bytes_per_s=256 * KIB, chunk_bytes=16 * KIB).start()
    wait_until_locked(two_workers, url)  # worker A has taken the lock
    other = RawRequest("PATCH", url, patch_headers(0, len(intruder)), sock=second)
    other.send(intruder)
    refused = other.read_response()
    other.close()
    assert not sender.done and sender.error is None, "the first PATCH stopped streaming during the test"
    sender.stop()
    assert refused.status in (409, 423), refused
    assert refused.body.strip() and b"\n" not in refused.body.strip()
    holder.send(data[sender.sent :])
    response = holder.read_response()
    holder.close()
    assert response.status == 204 and response.headers["upload-offset"] == str(len(data)), response
    assert sha256(download(url)) == sha256(data)


def test_quiet_holder_on_one_worker_gives_way_to_a_patch_on_the_other(two_workers: ServerProcess) -> None:
    """ours: the stale-lock takeover works across processes. A PATCH on worker A stops sending but keeps its
    connection open; a PATCH on worker B asks it to let go, and within a few seconds (not the lock timeout)
    A has committed the 500,000 bytes it received and B holds the lock (its stale offset gets 409). The upload
    then completes from worker B."""
    pids = worker_pids(two_workers)
    connections = connection_per_worker(two_workers, pids)
    first, second = (connections[pid] for pid in pids)
    data = os.urandom(2_000_000)
    sent = 500_000
    url = create_upload(two_workers.url, len(data))
    stale = RawRequest("PATCH", url, patch_headers(0, len(data)), sock=first)
    stale.send(data[:sent])
    wait_until_locked(two_workers, url)  # worker A holds the lock
    wait_until_read(first, two_workers)  # and has read every byte sent (none left in either socket queue)
    started = time.monotonic()
    takeover = RawRequest("PATCH", url, patch_headers(0, 100_000), sock=second)
    takeover.send(data[:100_000])
    answer = takeover.read_response()
    waited = time.monotonic() - started
    assert answer.status == 409 and str(sent).encode() in answer.body, answer
    assert waited < STALE_LOCK_S + LOCK_TIMEOUT_S, f"the takeover took {waited:.2f} s"
    assert stale.read_response(timeout_s=5).status == 423
    stale.close()
    assert poll_offset(url, sent) == sent == head_offset(url)
    response = patch(url, sent, data[sent:])
    assert response.status_code == 204, (response.status_code, response.text)
    assert sha256(download(url)) == sha256(data)
