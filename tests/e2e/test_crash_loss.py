"""Crash loss (issue 11): after ``kill -9`` of the server, a resume re-sends at most about max(1 s of the
body, 8 MiB) of what the server had received (``--commit-interval-s 1``, ``--commit-interval-bytes 8MiB``,
the defaults), and HEAD after the restart is never ahead of the bytes in the file.

Real clients (the tusedge CLI and tus-js-client) upload through a server that reads each client's body at
16 MiB/s (``--client-bandwidth-bytes``), so "1 s" is 16 MiB here; a raw sender at 4 MiB/s checks the 8 MiB
floor. The server is killed at seeded random moments; what each kill cost is the server's own count of body
bytes read but not committed, read just before the kill (tests/crashes.py). Every upload ends byte-exact.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
from pathlib import Path

import pytest
from crashes import MIB, CrashLog
from js_harness import UploadProcess
from observe import metric, wait_for
from rawhttp import (
    BodySender,
    RawRequest,
    create_upload,
    download,
    file_prefix,
    head_offset,
    patch,
    patch_headers,
    sha256,
    upload_file,
)
from server_process import ROOT, ServerFactory, ServerProcess
from upload_files import random_file, served_sha256

RATE = 16 * MIB


def bound(rate: float) -> float:
    """What a kill may cost: max(1 s of the body, 8 MiB), with room for the checkpoint's own time and the
    bytes of the chunk in flight."""
    return max(8 * MIB, rate * 1.0) * 1.25 + 1 * MIB


def wait_read(server: ServerProcess, at_least: float) -> None:
    wait_for(lambda: metric(server.origin, "tusedge_body_bytes_read_total") >= at_least,
             f"{at_least} body bytes read", timeout_s=60)  # fmt: skip


def kill_at_random_moments(server: ServerProcess, log: CrashLog, rng: random.Random, kills: int,
                           alive: object) -> None:  # fmt: skip
    for _ in range(kills):
        # A moment anywhere in a checkpoint cycle: 1.5 to 2.5 s of the fast client into this lifetime.
        wait_read(server, rng.uniform(1.5, 2.5) * RATE)
        assert callable(alive) and alive(), "the client finished before the kill"
        log.kill_and_restart(server)


@pytest.mark.parametrize("client", ["tusedge", "tus-js-client"])
def test_kill_9_resends_at_most_1_s_of_the_body(
    server_factory: ServerFactory, tmp_path: Path, client: str, request: pytest.FixtureRequest
) -> None:
    server = server_factory("--client-bandwidth-bytes", str(RATE))
    size = 96 * MIB + 4321
    source = tmp_path / "payload.bin"
    digest = random_file(source, size)
    log = CrashLog()
    rng = random.Random(f"crash-loss-{client}")
    if client == "tusedge":
        # --checksum none: a checksummed PATCH counts only once whole (its chunk is the unit of loss, see
        # docs/durability.md); without it the server's checkpoints apply to our client's 64 MiB PATCHes.
        cmd = [sys.executable, "-m", "tusedge", "upload", str(source), server.url, "--checksum", "none",
               "--store", str(tmp_path / "r.db"), "--quiet", "--retries", "20"]  # fmt: skip
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
        try:
            kill_at_random_moments(server, log, rng, 2, lambda: proc.poll() is None)
            out, err = proc.communicate(timeout=180)
        finally:
            proc.kill()
        assert proc.returncode == 0, err
        url = out.strip()
    else:
        node = request.getfixturevalue("node_executable")
        args = ["--endpoint", server.url, "--file", str(source),
                "--retry-delays", "0,200,500,1000,1000,2000,2000,3000"]  # fmt: skip
        with UploadProcess(node, args, tmp_path / "upload.stderr") as upload:
            kill_at_random_moments(server, log, rng, 2, upload.running)
            result = upload.wait(timeout=180)
        assert result.returncode == 0 and result.final.get("ok") is True, result.describe(server)
        url = result.final["url"]
    assert served_sha256(url) == digest
    print(f"{client} at 16 MiB/s: {log.summary()}")
    assert all(0 <= loss <= bound(RATE) for loss in log.losses), log.summary()


def test_kill_9_of_a_slow_body_resends_at_most_8_mib(server_factory: ServerFactory) -> None:
    """At 4 MiB/s a second is less than 8 MiB: checkpoints come every 8 MiB (one fsync per 2 s, not per
    second), and a kill costs at most that. HEAD after the restart is exactly the durable offset: the file
    holds those bytes, and not more was sent."""
    server = server_factory()
    rate = 4 * MIB
    data = os.urandom(32 * MIB)
    url = create_upload(server.url, len(data))
    log = CrashLog()
    rng = random.Random("slow-body")
    offset = 0
    for _ in range(2):
        request = RawRequest("PATCH", url, patch_headers(offset, len(data) - offset))
        sender = BodySender(request, data[offset:], rate_bytes_per_s=rate).start()
        wait_read(server, rng.uniform(9, 15) * MIB)
        assert not sender.done
        loss = log.kill_and_restart(server)
        sender.join()
        request.close()
        after = head_offset(url)
        assert offset < after <= offset + sender.attempted
        assert file_prefix(upload_file(server.data_dir, url), after) == data[:after]
        assert loss <= bound(rate), log.summary()
        offset = after
    assert patch(url, offset, data[offset:]).status_code == 204
    assert sha256(download(url)) == sha256(data)
    print(f"raw sender at 4 MiB/s: {log.summary()}")
