"""The tusedge client against a real tusedge server: sequential and parallel uploads, resuming after the
server died mid-upload, and the CLI."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from server_process import ROOT, ServerFactory, ServerProcess
from upload_files import random_file, served_sha256

from tusedge.client.errors import GaveUp
from tusedge.client.fingerprint import fingerprint
from tusedge.client.resume import ResumeStore
from tusedge.client.retry import RetryPolicy
from tusedge.client.uploader import UploadOptions, upload_sync

MiB = 1024 * 1024


@pytest.mark.parametrize("parallel", [1, 4])
def test_client_upload_matches_sequential_and_parallel(
    tusedge_server: ServerProcess, tmp_path: Path, parallel: int
) -> None:
    source = tmp_path / "file.bin"
    digest = random_file(source, 9 * MiB + 123)
    options = UploadOptions(parallel=parallel, chunk_size=2 * MiB)
    result = upload_sync(source, tusedge_server.url, options, store=ResumeStore(tmp_path / "r.db"))
    assert served_sha256(result.url) == digest
    head = httpx.head(result.url, headers={"Tus-Resumable": "1.0.0"})
    assert ("Upload-Concat" in head.headers) == (parallel > 1)
    assert result.resumed_from == 0 and result.bytes_sent == source.stat().st_size


def test_client_resumes_from_the_servers_offsets_after_the_server_died(
    server_factory: ServerFactory, tmp_path: Path
) -> None:
    """A run that gave up when the server died is resumed by the next run from the stored URLs: the bytes
    the server had are not sent again."""
    server = server_factory(
        "--commit-interval-bytes", "1MiB", "--commit-interval-s", "0", "--write-buffer-bytes", "256KiB"
    )
    source = tmp_path / "file.bin"
    size = 128 * MiB
    digest = random_file(source, size)
    store = ResumeStore(tmp_path / "r.db")

    def kill_when_started() -> None:
        """Kill -9 the server once it has committed a few MiB (read from the stored part URLs)."""
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            stored = store.get(fingerprint(source), server.url)
            heads = [httpx.head(url, headers={"Tus-Resumable": "1.0.0"}) for url in (stored.parts if stored else [])]
            if sum(int(h.headers.get("Upload-Offset", 0)) for h in heads) >= 4 * MiB:
                break
            time.sleep(0.005)
        server.kill()

    killer = threading.Thread(target=kill_when_started)
    killer.start()
    with pytest.raises(GaveUp):
        options = UploadOptions(parallel=2, chunk_size=MiB, retry=RetryPolicy(max_attempts=0))
        upload_sync(source, server.url, options, store=store)
    killer.join()
    server.start()
    result = upload_sync(source, server.url, UploadOptions(parallel=2, chunk_size=MiB), store=store)
    assert result.resumed_from > 0
    assert result.bytes_sent <= size - result.resumed_from
    assert served_sha256(result.url) == digest


def test_client_modified_file_is_uploaded_fresh(tusedge_server: ServerProcess, tmp_path: Path) -> None:
    source = tmp_path / "file.bin"
    store = ResumeStore(tmp_path / "r.db")
    random_file(source, MiB)
    first = upload_sync(source, tusedge_server.url, store=store)
    digest = random_file(source, MiB)
    second = upload_sync(source, tusedge_server.url, store=store)
    assert second.url != first.url and second.resumed_from == 0
    assert served_sha256(second.url) == digest


def test_cli_upload_and_status(tusedge_server: ServerProcess, tmp_path: Path) -> None:
    source = tmp_path / "report.pdf"
    digest = random_file(source, 3 * MiB)
    cmd = [sys.executable, "-m", "tusedge", "upload", str(source), tusedge_server.url, "--parallel", "2"]
    done = subprocess.run(
        [*cmd, "--store", str(tmp_path / "r.db")], capture_output=True, text=True, timeout=120, cwd=ROOT
    )
    assert done.returncode == 0, done.stderr
    url = done.stdout.strip()
    assert served_sha256(url) == digest
    status = subprocess.run(
        [sys.executable, "-m", "tusedge", "status", url], capture_output=True, text=True, timeout=60
    )
    assert status.returncode == 0
    assert f"offset:   {3 * MiB}" in status.stdout and "filename = report.pdf" in status.stdout


def test_cli_refused_upload_exits_3_with_the_servers_reason(server_factory: ServerFactory, tmp_path: Path) -> None:
    """A 4xx that cannot succeed (Upload-Length over the server's maximum) stops at once with exit 3."""
    server = server_factory("--max-size-bytes", "1000")
    source = tmp_path / "big.bin"
    random_file(source, 5000)
    cmd = [sys.executable, "-m", "tusedge", "upload", str(source), server.url, "--no-resume"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert done.returncode == 3
    assert "413" in done.stderr and "maximum" in done.stderr
