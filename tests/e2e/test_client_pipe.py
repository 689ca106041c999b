"""Uploads from a stream of unknown length (``tusedge upload - URL``, creation-defer-length) against a real
server: through a pipe, empty, surviving a server restart and a damaged PATCH within the run."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
from fault_proxy import DamageFirst, FaultProxy
from server_process import ROOT, ServerFactory, ServerProcess
from upload_files import InBackground

from tusedge.client.pipe import upload_stream_sync
from tusedge.client.retry import RetryPolicy
from tusedge.client.uploader import UploadOptions
from tusedge.protocol.metadata import parse_metadata

MIB = 1024 * 1024
TUS = {"Tus-Resumable": "1.0.0"}


def test_cli_uploads_standard_input_of_unknown_length(tusedge_server: ServerProcess, tmp_path: Path) -> None:
    data = os.urandom(9 * MIB + 7)
    (tmp_path / "src.bin").write_bytes(data)
    with (tmp_path / "src.bin").open("rb") as source:
        cat = subprocess.Popen(["cat"], stdin=source, stdout=subprocess.PIPE)
        cmd = [sys.executable, "-m", "tusedge", "upload", "-", tusedge_server.url, "--chunk-size", "2MiB",
               "--name", "backup.tar"]  # fmt: skip
        done = subprocess.run(cmd, stdin=cat.stdout, capture_output=True, text=True, cwd=ROOT, timeout=120)
        cat.wait(10)
    assert done.returncode == 0, done.stderr
    url = done.stdout.strip()
    head = httpx.head(url, headers=TUS)
    assert head.headers["Upload-Length"] == head.headers["Upload-Offset"] == str(len(data))
    assert parse_metadata(head.headers["Upload-Metadata"])["filename"] == b"backup.tar"
    assert hashlib.sha256(httpx.get(url).content).digest() == hashlib.sha256(data).digest()


def test_an_empty_stream_is_a_complete_empty_upload(tusedge_server: ServerProcess) -> None:
    done = subprocess.run([sys.executable, "-m", "tusedge", "upload", "-", tusedge_server.url, "--quiet"], input=b"",
                          capture_output=True, cwd=ROOT, timeout=60)  # fmt: skip
    assert done.returncode == 0, done.stderr
    head = httpx.head(done.stdout.decode().strip(), headers=TUS)
    assert head.headers["Upload-Length"] == head.headers["Upload-Offset"] == "0"


def test_a_stream_upload_survives_a_server_restart_within_the_run(server_factory: ServerFactory) -> None:
    """The chunk in flight is still in the client's buffer: after kill -9 and a restart the client HEADs the
    offset and sends the rest of that chunk again, then reads on."""
    server = server_factory(
        "--commit-interval-bytes", "256KiB", "--commit-interval-s", "0", "--write-buffer-bytes", "256KiB"
    )
    data = os.urandom(12 * MIB)
    read_fd, write_fd = os.pipe()

    def produce() -> None:
        with os.fdopen(write_fd, "wb") as out:
            for start in range(0, len(data), 256 * 1024):
                out.write(data[start : start + 256 * 1024])
                out.flush()
                time.sleep(0.02)  # ~12 MiB/s: the upload takes about a second

    threading.Thread(target=produce, daemon=True).start()
    options = UploadOptions(chunk_size=MIB, retry=RetryPolicy(max_attempts=20, base_delay_s=0.2, max_delay_s=1))
    with os.fdopen(read_fd, "rb") as stream:
        uploading = InBackground(lambda: upload_stream_sync(stream, server.url, options))
        time.sleep(0.4)
        server.kill()
        time.sleep(0.5)
        server.start()
        result = uploading.result()
    assert result.retries > 0
    assert hashlib.sha256(httpx.get(result.url).content).digest() == hashlib.sha256(data).digest()


def test_a_damaged_chunk_is_sent_again_from_the_buffer(tusedge_server: ServerProcess, tmp_path: Path) -> None:
    damage = DamageFirst("PATCH")

    data = os.urandom(3 * MIB)
    (tmp_path / "s.bin").write_bytes(data)
    with FaultProxy(tusedge_server.port, damage=damage) as proxy, (tmp_path / "s.bin").open("rb") as stream:
        options = UploadOptions(chunk_size=MIB, retry=RetryPolicy(base_delay_s=0.05))
        result = upload_stream_sync(stream, f"{proxy.url}/files/", options)
    assert len(damage.damaged) == 1 and result.retries == 1 and result.checksum == "sha256"
    assert [p.headers.get("upload-length") for p in proxy.requests("PATCH")][-1] == str(len(data))
    url = result.url.replace(str(proxy.port), str(tusedge_server.port))
    assert hashlib.sha256(httpx.get(url).content).digest() == hashlib.sha256(data).digest()
