"""Graceful drain on SIGTERM (tusedge/server/drain.py), on a real server process: uploads are refused with
503 + Retry-After and /readyz fails while a PATCH in flight runs on to its end; past --drain-timeout-s the
PATCH is cut, what arrived is committed, and the process exits by itself."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from rawhttp import TUS, RawRequest, create_upload, download, head_offset, patch_headers, sha256
from server_process import ServerFactory, ServerProcess

KIB = 1024
# Unpreallocated files grow as the server writes, so the file's size shows what arrived before a commit.
FLAGS = ("--no-preallocate", "--write-buffer-bytes", "64KiB")


def wait_until(condition: Callable[[], bool], what: str, timeout_s: float = 15.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"after {timeout_s} s: {what}"
        time.sleep(0.02)


def upload_file(server: ServerProcess, url: str) -> Path:
    return server.data_dir / "uploads" / url.rsplit("/", 1)[1]


def readyz(server: ServerProcess) -> httpx.Response:
    return httpx.get(f"{server.origin}/readyz", timeout=10)


def draining(server: ServerProcess) -> bool:
    response = readyz(server)
    return response.status_code == 503 and response.json()["checks"]["draining"] is True


def start_patch(server: ServerProcess, body: bytes, first: int) -> tuple[str, RawRequest]:
    """A PATCH of all of ``body`` with its first ``first`` bytes sent, and some of them written to the file
    (the server writes in --write-buffer-bytes batches: the last one may still be held)."""
    url = create_upload(server.url, len(body))
    request = RawRequest("PATCH", url, patch_headers(0, len(body)))
    request.send(body[:first])
    wait_until(lambda: upload_file(server, url).stat().st_size >= 64 * KIB, "the PATCH's first bytes on disk")
    return url, request


def access_log(server: ServerProcess, method: str, url: str) -> dict[str, Any]:
    upload_id = url.rsplit("/", 1)[1]
    lines: list[dict[str, Any]] = [json.loads(line) for line in server.log if line.startswith("{")]
    (found,) = [line for line in lines if line["method"] == method and line["upload_id"] == upload_id]
    return found


def exit_status(server: ServerProcess, timeout_s: float = 20.0) -> int:
    assert server.proc is not None
    return server.proc.wait(timeout_s)


def assert_new_uploads_refused(server: ServerProcess, other_url: str) -> None:
    created = httpx.post(server.url, headers={**TUS, "Upload-Length": "10"}, timeout=10)
    assert created.status_code == 503, created.text
    assert created.headers["Retry-After"] == "5"
    assert "shutting down" in created.text
    patched = httpx.patch(other_url, content=b"x", headers={**patch_headers(0, 1)}, timeout=10)
    assert patched.status_code == 503 and patched.headers["Retry-After"] == "5"
    assert head_offset(other_url) == 0  # HEAD is still answered: a client can learn where to resume


@pytest.mark.parametrize("workers", [1, 2])
def test_sigterm_refuses_new_uploads_and_lets_a_patch_in_flight_finish(
    server_factory: ServerFactory, workers: int
) -> None:
    server = server_factory(*FLAGS, "--workers", str(workers))
    wait_until(lambda: sum("Running on" in line for line in server.log) == workers, "every worker serving")
    body = os.urandom(1024 * KIB)
    other = create_upload(server.url, 10)
    url, request = start_patch(server, body, 256 * KIB)

    server.proc.send_signal(signal.SIGTERM)  # type: ignore[union-attr]
    wait_until(lambda: draining(server), "/readyz reports draining")
    if workers == 2:  # both processes drain: whichever one takes the connection refuses
        for _ in range(6):
            assert_new_uploads_refused(server, other)
    else:
        assert_new_uploads_refused(server, other)
    assert server.proc.poll() is None, "the server exited with a PATCH in flight"  # type: ignore[union-attr]

    request.send(body[256 * KIB :])
    answer = request.read_response()
    assert answer.status == 204 and answer.headers["upload-offset"] == str(len(body))
    request.close()
    assert exit_status(server) == 0

    server.start()
    assert head_offset(url) == len(body)
    assert sha256(download(url)) == sha256(body)


def test_past_the_drain_timeout_a_patch_is_cut_and_what_arrived_is_committed(server_factory: ServerFactory) -> None:
    server = server_factory(*FLAGS, "--drain-timeout-s", "1")
    body = os.urandom(1024 * KIB)
    url, request = start_patch(server, body, 320 * KIB)  # then the client goes quiet, keeping the connection

    written = upload_file(server, url).stat().st_size  # on disk, not committed: HEAD still says 0
    assert head_offset(url) == 0
    signalled = time.monotonic()
    server.proc.send_signal(signal.SIGTERM)  # type: ignore[union-attr]
    answer = request.read_response()
    assert time.monotonic() - signalled >= 1.0, "cut before --drain-timeout-s"
    assert answer.status == 503 and answer.headers["retry-after"] == "5"
    assert answer.headers["tus-resumable"] == "1.0.0"
    request.close()
    assert exit_status(server) == 0
    arrived = access_log(server, "PATCH", url)["bytes_received"]
    assert written <= arrived <= 320 * KIB

    server.start()
    assert head_offset(url) == arrived  # every byte that reached the server before the cut
    assert upload_file(server, url).read_bytes()[:arrived] == body[:arrived]


@pytest.mark.parametrize(("workers", "sig"), [(1, signal.SIGTERM), (1, signal.SIGHUP), (2, signal.SIGHUP)])
def test_without_bodies_in_flight_sigterm_or_sighup_stops_at_once(
    server_factory: ServerFactory, workers: int, sig: signal.Signals
) -> None:
    server = server_factory("--drain-timeout-s", "600", "--workers", str(workers))
    wait_until(lambda: sum("Running on" in line for line in server.log) == workers, "every worker serving")
    create_upload(server.url, 10)
    server.proc.send_signal(sig)  # type: ignore[union-attr]
    assert exit_status(server, timeout_s=15) == 0  # far less than the drain timeout
    wait_until(lambda: sum("drained; stopping" in line for line in server.log) == workers, "every worker drained")
