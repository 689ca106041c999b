"""The client's features against real servers: an independent tus server (@tus/server), HTTP/2 and HTTP/3,
per-PATCH checksums and the whole-file digest, the bandwidth cap, file objects, progress output and
usage errors."""

from __future__ import annotations

import hashlib
import io
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from client_progress import wait_for_progress
from fault_proxy import FaultProxy
from server_process import ROOT, ServerFactory, ServerProcess
from tls_servers import https_server
from upload_files import random_file, served_sha256

from tusedge.client.resume import ResumeStore
from tusedge.client.uploader import UploadOptions, upload_sync

MiB = 1024 * 1024
TUS = {"Tus-Resumable": "1.0.0"}
JS_DIR = ROOT / "tests" / "js"


def cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tusedge", "upload", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout)  # fmt: skip


@pytest.fixture
def tus_node_server(node_executable: str, tmp_path: Path) -> Iterator[ServerProcess]:
    """@tus/server 2.4.5 with its file store: a tus server that shares no code with ours."""
    server = ServerProcess(tmp_path / "node-data", [])
    proc = subprocess.Popen(
        [node_executable, str(JS_DIR / "tus-node-server.mjs"), "--port", "0", "--dir", str(server.data_dir)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=JS_DIR,
    )  # fmt: skip
    assert proc.stdout is not None
    line = proc.stdout.readline()
    match = re.search(r"Running on http://127\.0\.0\.1:(\d+)", line)
    assert match, line
    server.port, server.proc = int(match.group(1)), proc
    try:
        yield server
    finally:
        server.stop()


@pytest.mark.parametrize("parallel", [1, 4])
def test_client_uploads_to_an_independent_tus_server(
    tus_node_server: ServerProcess, tmp_path: Path, parallel: int
) -> None:
    """Against @tus/server the client uses what that server offers (OPTIONS) and the bytes arrive intact."""
    offered = httpx.options(tus_node_server.url, headers=TUS).headers["Tus-Extension"].split(",")
    source = tmp_path / "file.bin"
    digest = random_file(source, 9 * MiB + 7)
    options = UploadOptions(parallel=parallel, chunk_size=2 * MiB)
    result = upload_sync(source, tus_node_server.url, options, store=ResumeStore(tmp_path / "s.db"))
    assert result.parts == (parallel if "concatenation" in offered else 1)
    assert result.checksum is None and result.digest_status is None  # it offers neither
    assert served_sha256(result.url) == digest


def test_cli_resumes_on_an_independent_tus_server(tus_node_server: ServerProcess, tmp_path: Path) -> None:
    """A run interrupted on @tus/server (SIGINT) is resumed by the same command from that server's offset."""
    source, store = tmp_path / "file.bin", tmp_path / "s.db"
    digest = random_file(source, 16 * MiB)
    args = [sys.executable, "-m", "tusedge", "upload", str(source), tus_node_server.url, "--chunk-size", "1MiB",
            "--store", str(store)]  # fmt: skip
    proc = subprocess.Popen([*args, "--limit-rate", "4MiB"], cwd=ROOT, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
    wait_for_progress(store, source, tus_node_server.url, MiB, proc)
    proc.send_signal(2)
    assert proc.wait(30) == 130, proc.communicate()
    again = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    resumed = int(re.search(r"\((\d+) bytes\) already on the server", again.stderr).group(1))  # type: ignore[union-attr]
    assert resumed >= MiB
    assert served_sha256(again.stdout.strip()) == digest


@pytest.mark.parametrize("parallel", [1, 3])
def test_client_declares_the_whole_file_digest_and_waits_for_the_verdict(
    tusedge_server: ServerProcess, tmp_path: Path, parallel: int
) -> None:
    source = tmp_path / "file.bin"
    digest = random_file(source, 7 * MiB)
    result = upload_sync(source, tusedge_server.url, UploadOptions(parallel=parallel, chunk_size=2 * MiB),
                         store=ResumeStore(tmp_path / "s.db"))  # fmt: skip
    assert result.digest_status == "verified" and result.checksum == "crc32"  # the strong check: the whole file's
    head = httpx.head(result.url, headers=TUS)
    assert head.headers["Upload-Checksum-Status"] == "verified"
    assert served_sha256(result.url) == digest


def test_without_the_whole_file_digest_each_patch_carries_sha256(tusedge_server: ServerProcess, tmp_path: Path) -> None:
    """CRC-32 per PATCH only stands in beside the whole file's SHA-256: with ``digest=False`` it is SHA-256."""
    source = tmp_path / "file.bin"
    random_file(source, 3 * MiB)
    result = upload_sync(source, tusedge_server.url, UploadOptions(digest=False, chunk_size=MiB, resume=False))
    assert result.checksum == "sha256" and result.digest_status is None


def test_cli_exits_5_when_the_server_finds_a_different_whole_file_digest(
    tusedge_server: ServerProcess, tmp_path: Path
) -> None:
    """A declared digest (here a wrong one given as metadata) that the server's own computation contradicts."""
    source = tmp_path / "file.bin"
    random_file(source, MiB)
    wrong = "sha256 " + "A" * 43 + "="
    done = cli(str(source), tusedge_server.url, "--metadata", f"checksum={wrong}", "--no-resume")
    assert done.returncode == 5, done.stderr
    assert "digest of the upload differs" in done.stderr


@pytest.mark.parametrize(("flag", "expected"), [("auto", "crc32 "), ("sha1", "sha1 "), ("none", None)])
def test_cli_sends_upload_checksum_on_every_patch_as_asked(
    tusedge_server: ServerProcess, tmp_path: Path, flag: str, expected: str | None
) -> None:
    source = tmp_path / "file.bin"
    digest = random_file(source, 3 * MiB + 5)
    with FaultProxy(tusedge_server.port) as proxy:
        done = cli(str(source), f"{proxy.url}/files/", "--chunk-size", "1MiB", "--checksum", flag, "--no-resume")
    assert done.returncode == 0, done.stderr
    patches = proxy.requests("PATCH")
    assert len(patches) == 4
    for patch in patches:
        value = patch.headers.get("upload-checksum")
        assert (value is None) if expected is None else (value is not None and value.startswith(expected))
    assert served_sha256(done.stdout.strip().replace(str(proxy.port), str(tusedge_server.port))) == digest


def test_cli_refuses_a_checksum_algorithm_the_server_does_not_offer(
    tus_node_server: ServerProcess, tmp_path: Path
) -> None:
    source = tmp_path / "file.bin"
    random_file(source, 1000)
    done = cli(str(source), tus_node_server.url, "--checksum", "sha1", "--no-resume")
    assert done.returncode == 1 and "does not offer checksum algorithm 'sha1'" in done.stderr


def test_client_over_http2_with_tls(server_factory: ServerFactory, tmp_path: Path) -> None:
    server, certfile = https_server(server_factory, tmp_path)
    source = tmp_path / "file.bin"
    digest = random_file(source, 6 * MiB)
    options = UploadOptions(parallel=3, chunk_size=MiB, http="2", verify=str(certfile))
    result = upload_sync(source, server.url, options, store=ResumeStore(tmp_path / "s.db"))
    assert result.http_version == "HTTP/2" and result.parts == 3
    assert served_sha256(result.url, cafile=certfile) == digest


def test_cli_over_cleartext_http2(tusedge_server: ServerProcess, tmp_path: Path) -> None:
    source = tmp_path / "file.bin"
    digest = random_file(source, 3 * MiB)
    done = cli(str(source), tusedge_server.url, "--http2", "--parallel", "2", "--no-resume")
    assert done.returncode == 0, done.stderr
    assert "2 parts over HTTP/2" in done.stderr
    assert served_sha256(done.stdout.strip()) == digest


def test_cli_over_http3_checks_the_certificate(server_factory: ServerFactory, tmp_path: Path) -> None:
    server, certfile = https_server(server_factory, tmp_path, "--http3")
    source = tmp_path / "file.bin"
    digest = random_file(source, 4 * MiB)
    done = cli(str(source), server.url, "--http3", "--cacert", str(certfile), "--parallel", "2", "--no-resume")
    assert done.returncode == 0, done.stderr
    assert "2 parts over HTTP/3" in done.stderr
    assert served_sha256(done.stdout.strip(), cafile=certfile) == digest
    unchecked = cli(str(source), server.url, "--http3", "--no-resume", "--retries", "0", timeout=120)
    assert unchecked.returncode != 0 and "certificate" in unchecked.stderr.lower()


def test_client_bandwidth_cap_holds_the_rate_down(tusedge_server: ServerProcess, tmp_path: Path) -> None:
    """4 MiB at 2 MiB/s for all parts together cannot take less than about 2 s (minus the 0.5 MiB burst)."""
    source = tmp_path / "file.bin"
    random_file(source, 4 * MiB)
    started = time.monotonic()
    result = upload_sync(source, tusedge_server.url, UploadOptions(parallel=2, rate_limit=2 * MiB, resume=False))
    assert time.monotonic() - started >= 1.6
    assert result.bytes_sent == 4 * MiB


def test_client_uploads_a_file_object(tusedge_server: ServerProcess) -> None:
    data = os.urandom(2 * MiB + 3)
    result = upload_sync(io.BytesIO(data), tusedge_server.url, UploadOptions(parallel=2, chunk_size=MiB))
    assert served_sha256(result.url) == hashlib.sha256(data).hexdigest()
    assert result.digest_status == "verified"


def test_cli_progress_is_plain_lines_when_not_on_a_terminal(tusedge_server: ServerProcess, tmp_path: Path) -> None:
    source = tmp_path / "file.bin"
    random_file(source, 8 * MiB)
    done = cli(str(source), tusedge_server.url, "--limit-rate", "4MiB", "--parallel", "2", "--no-resume",
               "--progress-interval", "0.5")  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "\r" not in done.stderr and "\x1b" not in done.stderr
    lines = [line for line in done.stderr.splitlines() if "/ 8.0 MiB" in line]
    assert lines and all(re.search(r"\d+\.\d% ", line) for line in lines)
    assert lines[-1].startswith("8.0 MiB / 8.0 MiB 100.0%")
    assert len(lines) >= 3 and "(2 parts)" in lines[0] and "MB/s" in lines[1]
    quiet = cli(str(source), tusedge_server.url, "--quiet", "--no-resume")
    assert quiet.returncode == 0 and quiet.stderr == ""


@pytest.mark.parametrize(
    "flags",
    [["--parallel", "0"], ["--chunk-size", "lots"], ["--limit-rate", "-"], ["--header", "novalue"],
     ["--metadata", "=x"], ["--retries", "-1"]],
)  # fmt: skip
def test_cli_usage_errors_exit_2(tmp_path: Path, flags: list[str]) -> None:
    source = tmp_path / "file.bin"
    source.write_bytes(b"x")
    done = cli(str(source), "http://127.0.0.1:9/files/", *flags)
    assert done.returncode == 2, done.stderr


def test_cli_missing_file_exits_2(tmp_path: Path) -> None:
    done = cli(str(tmp_path / "absent"), "http://127.0.0.1:9/files/")
    assert done.returncode == 2 and "is not a file" in done.stderr


def test_a_small_file_goes_in_the_creation_request(tusedge_server: ServerProcess, tmp_path: Path) -> None:
    """creation-with-upload: up to 1 MiB, one POST carries the bytes (with their Upload-Checksum); no PATCH."""
    source = tmp_path / "note.txt"
    digest = random_file(source, 300_000)
    with FaultProxy(tusedge_server.port) as proxy:
        result = upload_sync(source, f"{proxy.url}/files/", UploadOptions(resume=False))
    posts = proxy.requests("POST")
    assert len(posts) == 1 and posts[0].headers["content-length"] == "300000"
    assert posts[0].headers["upload-checksum"].startswith("crc32 ")
    assert proxy.requests("PATCH") == []
    assert result.bytes_sent == 300_000 and result.resumed_from == 0 and result.digest_status == "verified"
    assert served_sha256(result.url.replace(str(proxy.port), str(tusedge_server.port))) == digest
