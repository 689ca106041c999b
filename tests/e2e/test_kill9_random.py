"""kill -9 of the server at 20 random moments while four uploads run at once, each in parallel parts
(concatenation): two with the tusedge CLI, two with tus-js-client (issue 11). After every kill the server is
started again on the same port and data; the clients resume on their own. All four complete byte-exact
(SHA-256 of the download), and the bytes each kill cost (read by the server but not yet durable, so sent
again) are reported.

The server reads all four at 8 MiB/s together (``--client-bandwidth-bytes``; they share 127.0.0.1), so that the
uploads outlast the kills and the test stays near a minute and a half on a loaded 2-core machine. The kill
moments are seeded: a random amount of body bytes (0.25-3 MiB) into each server lifetime, which puts them
anywhere in the checkpoint cycle, in merges, in creations and in the clients' retries.
"""

from __future__ import annotations

import random
import subprocess
import sys
import time
from pathlib import Path

from crashes import MIB, CrashLog
from js_harness import UploadProcess
from observe import metric, wait_for
from server_process import ROOT, ServerFactory
from upload_files import random_file, served_sha256

KILLS = 20


def wait_read(origin: str, at_least: float) -> None:
    wait_for(lambda: metric(origin, "tusedge_body_bytes_read_total") >= at_least, f"{at_least:.0f} body bytes read",
             timeout_s=60)  # fmt: skip


SIZE = 32 * MIB


def test_20_kills_during_4_parallel_uploads_all_complete_byte_exact(
    server_factory: ServerFactory, tmp_path: Path, node_executable: str
) -> None:
    server = server_factory("--client-bandwidth-bytes", str(8 * MIB))
    rng = random.Random("kill-9-x20")
    sources = [tmp_path / f"file{i}.bin" for i in range(4)]
    digests = [random_file(path, SIZE + 1000 * i + 7) for i, path in enumerate(sources)]
    ours = [
        subprocess.Popen(
            [sys.executable, "-m", "tusedge", "upload", str(sources[i]), server.url, "--parallel", "2",
             "--store", str(tmp_path / f"r{i}.db"), "--quiet", "--retries", "40", "--retry-time", "300",
             *(["--checksum", "none"] if i else [])],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
        )
        for i in range(2)
    ]  # fmt: skip
    js_args = ["--parallel", "2", "--retry-delays", ",".join(["0", "200", "500", "1000"] + ["2000"] * 30)]
    theirs = [
        UploadProcess(node_executable, ["--endpoint", server.url, "--file", str(sources[i]), *js_args],
                      tmp_path / f"js{i}.stderr")
        for i in (2, 3)
    ]  # fmt: skip
    log = CrashLog()
    started = time.monotonic()
    try:
        for _ in range(KILLS):
            threshold = rng.uniform(0.25, 3) * MIB
            wait_read(server.origin, threshold)
            running = sum(p.poll() is None for p in ours) + sum(u.running() for u in theirs)
            assert running == 4, f"an upload ended before kill {len(log.losses) + 1}: {log.summary()}"
            log.kill_and_restart(server)
        urls = []
        for proc in ours:
            out, err = proc.communicate(timeout=240)
            assert proc.returncode == 0, err
            urls.append(out.strip())
        for upload in theirs:
            result = upload.wait(timeout=240)
            assert result.returncode == 0 and result.final.get("ok") is True, result.describe(server)
            urls.append(result.final["url"])
    finally:
        for proc in ours:
            proc.kill()
        for upload in theirs:
            upload.kill()
    elapsed = time.monotonic() - started
    for url, digest in zip(urls, digests, strict=True):
        assert served_sha256(url) == digest
    resent = sum(log.losses)
    print(f"\n{KILLS} kills in {elapsed:.0f} s: {log.summary()}; {resent / MIB:.1f} MiB re-sent in all, "
          f"{resent / KILLS / 4 / MIB:.2f} MiB per upload per kill on average")  # fmt: skip
    assert len(log.losses) == KILLS
