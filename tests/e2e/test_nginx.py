"""tusedge behind a real nginx configured by examples/nginx/tusedge.conf: the protocol holds through it,
Location headers name the proxy, bodies stream through (no buffering), a body cut off at the client keeps
what reached tusedge, and the tusedge client uploads in parallel through it."""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from nginx_server import NginxProxy
from rawhttp import BodySender, RawRequest, create_upload, download, head_offset, patch, patch_headers, sha256
from server_process import ROOT, ServerFactory, ServerProcess

KIB, MIB = 1024, 1024 * 1024
TUS = {"Tus-Resumable": "1.0.0"}


@pytest.fixture
def tusedge_behind_nginx(server_factory: ServerFactory) -> Iterator[tuple[ServerProcess, NginxProxy]]:
    server = server_factory("--trust-proxy", "--commit-interval-bytes", "1MiB", "--commit-interval-s", "0",
                            "--write-buffer-bytes", "256KiB", "--max-size-bytes", str(10**9))  # fmt: skip
    proxy = NginxProxy(server.port).start()
    try:
        yield server, proxy
    finally:
        proxy.stop()


def direct(server: ServerProcess, url: str) -> str:
    return f"{server.origin}/{url.split('/', 3)[3]}"


def test_location_names_the_proxy_and_the_upload_works_through_it(
    tusedge_behind_nginx: tuple[ServerProcess, NginxProxy],
) -> None:
    _, proxy = tusedge_behind_nginx
    created = httpx.post(proxy.url, headers={**TUS, "Upload-Length": "5"})
    assert created.status_code == 201
    assert created.headers["Location"].startswith(f"http://127.0.0.1:{proxy.port}/files/")
    assert patch(created.headers["Location"], 0, b"hello").status_code == 204
    assert download(created.headers["Location"]) == b"hello"


def test_the_conformance_suite_passes_through_nginx(tusedge_behind_nginx: tuple[ServerProcess, NginxProxy]) -> None:
    """Every tus rule. (Not the ours.* rules: nginx answers a path like /files/..%2f..%2fetc itself, with
    its own HTML 400, before tusedge could give its one-line reason.)"""
    _, proxy = tusedge_behind_nginx
    done = subprocess.run([sys.executable, "-m", "conformance", proxy.url, "--json"], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    results = json.loads(done.stdout)["results"]
    failed = [r for r in results if r["status"] == "FAIL"]
    assert done.returncode == 0 and not failed, failed
    assert sum(r["status"] == "PASS" for r in results) >= 30


def test_patch_bodies_stream_through_nginx_unbuffered(tusedge_behind_nginx: tuple[ServerProcess, NginxProxy]) -> None:
    """While a PATCH body is still being sent to nginx, tusedge has already made part of it durable: the
    offset advances mid-request (a buffering proxy would show 0 until the whole body had arrived)."""
    server, proxy = tusedge_behind_nginx
    data = os.urandom(16 * MIB)
    url = create_upload(proxy.url, len(data))
    with RawRequest("PATCH", url, patch_headers(0, len(data))) as request:
        sender = BodySender(request, data, rate_bytes_per_s=4 * MIB, chunk_bytes=64 * KIB).start()
        deadline = time.monotonic() + 20
        while head_offset(direct(server, url)) < 2 * MIB:
            assert time.monotonic() < deadline, "tusedge saw nothing while nginx received the body"
            time.sleep(0.05)
        assert not sender.done  # the body is still on its way
        sender.stop()
        request.send(data[sender.sent :])
        response = request.read_response()
    assert response.status == 204
    assert sha256(download(url)) == sha256(data)


def test_a_body_cut_off_at_the_client_keeps_what_reached_tusedge(
    tusedge_behind_nginx: tuple[ServerProcess, NginxProxy],
) -> None:
    _, proxy = tusedge_behind_nginx
    data = os.urandom(8 * MIB)
    url = create_upload(proxy.url, len(data))
    with RawRequest("PATCH", url, patch_headers(0, len(data))) as request:
        request.send(data[: 3 * MIB])
        time.sleep(0.5)
        request.reset()
    deadline = time.monotonic() + 10
    while (kept := head_offset(url)) == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert 0 < kept <= 3 * MIB
    assert patch(url, kept, data[kept:]).status_code == 204
    assert sha256(download(url)) == sha256(data)


def test_the_client_uploads_in_parallel_through_nginx(
    tusedge_behind_nginx: tuple[ServerProcess, NginxProxy], tmp_path: Path
) -> None:
    _, proxy = tusedge_behind_nginx
    source = tmp_path / "file.bin"
    data = os.urandom(20 * MIB + 11)
    source.write_bytes(data)
    done = subprocess.run([sys.executable, "-m", "tusedge", "upload", str(source), proxy.url, "--parallel", "4",
                           "--chunk-size", "4MiB", "--no-resume"], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr
    url = done.stdout.strip()
    assert url.startswith(f"http://127.0.0.1:{proxy.port}/files/")
    assert re.search(r"whole-file digest verified", done.stderr)
    assert hashlib.sha256(httpx.get(url, timeout=60).content).hexdigest() == hashlib.sha256(data).hexdigest()
