"""A server with a signing key accepts new uploads only at pre-signed URLs (``tusedge sign``), until they
expire and up to their size; upload URLs work unsigned; tus clients (ours, tus-js-client's way of keeping
the endpoint's query) upload through signed URLs, and our client resumes after the URL is signed again."""

from __future__ import annotations

import hashlib
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import httpx
from client_progress import wait_for_progress
from js_harness import download_sha256, make_random_file, run_upload
from server_process import ROOT, ServerFactory, ServerProcess

KEY = "test-signing-key-0123456789abcdef"
TUS = {"Tus-Resumable": "1.0.0"}
MIB = 1024 * 1024


def signed_server(server_factory: ServerFactory, *flags: str) -> ServerProcess:
    return server_factory(*flags, env={"TUSEDGE_SIGNING_KEY": KEY})


def sign(url: str, *flags: str) -> str:
    done = subprocess.run([sys.executable, "-m", "tusedge", "sign", url, *flags], capture_output=True, text=True,
                          timeout=60, env={**os.environ, "TUSEDGE_SIGNING_KEY": KEY}, cwd=ROOT)  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_creation_needs_a_signed_url_and_upload_urls_need_none(server_factory: ServerFactory) -> None:
    server = signed_server(server_factory)
    assert httpx.options(server.url, headers=TUS).status_code == 204
    unsigned = httpx.post(server.url, headers={**TUS, "Upload-Length": "5"})
    assert unsigned.status_code == 401 and "signed URL" in unsigned.text
    created = httpx.post(sign(server.url), headers={**TUS, "Upload-Length": "5"})
    assert created.status_code == 201
    url = created.headers["Location"]
    assert "?" not in url  # the upload URL carries no signature: its random id is the capability
    headers = {**TUS, "Upload-Offset": "0", "Content-Type": "application/offset+octet-stream"}
    assert httpx.patch(url, content=b"hello", headers=headers).status_code == 204
    assert httpx.head(url, headers=TUS).headers["Upload-Offset"] == "5"
    assert httpx.get(url).content == b"hello"


def test_expired_and_tampered_urls_are_refused_with_a_reason(server_factory: ServerFactory) -> None:
    server = signed_server(server_factory)
    expired = httpx.post(sign(server.url, "--expires-in", "-5"), headers={**TUS, "Upload-Length": "5"})
    assert expired.status_code == 403 and "expired" in expired.text
    tampered = sign(server.url, "--max-size", "10").replace("max_size=10", "max_size=10000")
    refused = httpx.post(tampered, headers={**TUS, "Upload-Length": "5"})
    assert refused.status_code == 403 and "signature" in refused.text


def test_a_signed_size_limit_holds_for_plain_deferred_and_final_uploads(server_factory: ServerFactory) -> None:
    server = signed_server(server_factory)
    url = sign(server.url, "--max-size", "1000")
    assert httpx.post(url, headers={**TUS, "Upload-Length": "1000"}).status_code == 201
    too_big = httpx.post(url, headers={**TUS, "Upload-Length": "1001"})
    assert too_big.status_code == 413 and "1000" in too_big.text
    deferred = httpx.post(url, headers={**TUS, "Upload-Defer-Length": "1"})
    assert deferred.status_code == 400 and "Upload-Length" in deferred.text
    parts = [httpx.post(url, headers={**TUS, "Upload-Length": "600", "Upload-Concat": "partial"}) for _ in range(2)]
    assert [p.status_code for p in parts] == [201, 201]
    final = httpx.post(url, headers={**TUS, "Upload-Concat": "final;" + " ".join(p.headers["Location"] for p in parts)})
    assert final.status_code == 413  # 1200 bytes joined, over the 1000 the URL allows


def test_the_client_uploads_in_parallel_through_a_signed_url_and_resumes_after_resigning(
    server_factory: ServerFactory, tmp_path: Path
) -> None:
    """The parts and the final are created at the signed URL; a run interrupted before the URL expired is
    resumed through a newly signed URL (the resume store ignores the query)."""
    server = signed_server(server_factory)
    source, store = tmp_path / "file.bin", tmp_path / "store.db"
    data = os.urandom(16 * MIB)
    source.write_bytes(data)
    first_url = sign(server.url, "--max-size", "20MiB")
    args = [str(source), "--parallel", "4", "--chunk-size", "1MiB", "--store", str(store)]
    proc = subprocess.Popen([sys.executable, "-m", "tusedge", "upload", args[0], first_url, *args[1:], "--limit-rate",
                             "4MiB"], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
    wait_for_progress(store, source, server.url, MIB, proc)
    proc.send_signal(signal.SIGINT)
    assert proc.wait(30) == 130
    second_url = sign(server.url, "--max-size", "20MiB", "--expires-in", "600")
    assert second_url != first_url
    done = subprocess.run([sys.executable, "-m", "tusedge", "upload", args[0], second_url, *args[1:]], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr
    resumed = int(re.search(r"\((\d+) bytes\) already on the server", done.stderr).group(1))  # type: ignore[union-attr]
    assert resumed > 0
    assert (
        hashlib.sha256(httpx.get(done.stdout.strip(), timeout=60).content).hexdigest()
        == hashlib.sha256(data).hexdigest()
    )


def test_sign_needs_the_key_in_the_environment(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "TUSEDGE_SIGNING_KEY"}
    done = subprocess.run([sys.executable, "-m", "tusedge", "sign", "http://h/files/"], capture_output=True,
                          text=True, timeout=60, env=env, cwd=ROOT)  # fmt: skip
    assert done.returncode == 2 and "TUSEDGE_SIGNING_KEY" in done.stderr


def test_a_short_signing_key_is_refused_at_start(tmp_path: Path) -> None:
    env = {**os.environ, "TUSEDGE_SIGNING_KEY": "short"}
    done = subprocess.run([sys.executable, "-m", "tusedge", "serve", "--data-dir", str(tmp_path)], capture_output=True,
                          text=True, timeout=60, env=env, cwd=ROOT)  # fmt: skip
    assert done.returncode == 2 and "signing_key" in done.stderr


def test_tus_js_client_uploads_in_parallel_through_a_signed_url(
    server_factory: ServerFactory, node_executable: str, tmp_path: Path
) -> None:
    """An off-the-shelf client: tus-js-client keeps the endpoint's query for its POSTs (parts and final)."""
    server = signed_server(server_factory)
    source = tmp_path / "file.bin"
    digest = make_random_file(source, 9 * MIB + 5)
    args = ["--endpoint", sign(server.url), "--file", str(source), "--chunk-size", str(2 * MIB), "--parallel", "3"]
    result = run_upload(node_executable, args, tmp_path, timeout=120)
    assert result.returncode == 0 and result.final.get("ok") is True, result.describe(server)
    assert download_sha256(result.final["url"]) == (9 * MIB + 5, digest)
