"""/healthz and /readyz (tusedge/server/health.py) on real servers: readiness follows the state database
(a real PostgreSQL refusing connections), the data folder (a real tmpfs, filled, then remounted read-only)
and the drain (tests/e2e/test_drain.py); probes are never rate-limited."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from postgres_server import PostgresServer
from rawhttp import TUS, create_upload
from server_process import ServerFactory, ServerProcess

MIB = 1024 * 1024


def wait_until(condition: Callable[[], bool], what: str, timeout_s: float = 15.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"after {timeout_s} s: {what}"
        time.sleep(0.05)


def readyz(server: ServerProcess) -> httpx.Response:
    return httpx.get(f"{server.origin}/readyz", timeout=10)


def test_healthz_and_readyz_answer_200_with_their_checks(tusedge_server: ServerProcess) -> None:
    alive = httpx.get(f"{tusedge_server.origin}/healthz")
    assert alive.status_code == 200 and alive.json() == {"alive": True}
    ready = readyz(tusedge_server)
    assert ready.status_code == 200, ready.text
    body = ready.json()
    assert body["ready"] is True
    assert body["checks"]["database"] == "ok" and body["checks"]["storage"] == "ok"
    assert body["checks"]["draining"] is False and body["checks"]["free_bytes"] > 0
    assert ready.headers["Cache-Control"] == "no-store"
    assert httpx.head(f"{tusedge_server.origin}/readyz").status_code == 200


def test_probes_are_not_rate_limited(server_factory: ServerFactory) -> None:
    server = server_factory("--client-requests-per-s", "0.2")  # a burst of one request
    limited = [httpx.options(server.url).status_code for _ in range(5)]
    assert 429 in limited
    for _ in range(10):
        assert readyz(server).status_code == 200
        assert httpx.get(f"{server.origin}/healthz").status_code == 200


def _psql(postgres: PostgresServer, sql: str) -> None:
    subprocess.run([str(postgres.bin / "psql"), "-h", "127.0.0.1", "-p", str(postgres.port), "-U", "tusedge",
                    "-d", "postgres", "-v", "ON_ERROR_STOP=1", "-c", sql], check=True, capture_output=True)  # fmt: skip


def test_readyz_fails_while_the_state_database_refuses_connections(
    server_factory: ServerFactory, postgres: PostgresServer, postgres_url: str
) -> None:
    server = server_factory("--database-url", postgres_url)
    assert readyz(server).status_code == 200
    name = postgres_url.rsplit("/", 1)[1]
    _psql(postgres, f"ALTER DATABASE {name} ALLOW_CONNECTIONS false")
    _psql(postgres, f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'")
    try:
        failing = readyz(server)
        assert failing.status_code == 503
        assert failing.json()["checks"]["database"].startswith("failed: ")
        assert failing.json()["ready"] is False
    finally:
        _psql(postgres, f"ALTER DATABASE {name} ALLOW_CONNECTIONS true")
    wait_until(lambda: readyz(server).status_code == 200, "ready again once the database takes connections")
    assert any("not ready" in line for line in server.log)


@pytest.fixture
def small_filesystem(tmp_path: Path) -> Iterator[Path]:
    """A real 16 MiB tmpfs, mounted for this test (root only) and unmounted after it."""
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a tmpfs needs root (CI runs as root)")
    folder = tmp_path / "tmpfs"
    folder.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tusedge-test-readyz", str(folder)], check=True)
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def test_readyz_follows_free_space_and_a_read_only_data_folder(
    server_factory: ServerFactory, small_filesystem: Path
) -> None:
    server = server_factory("--ready-min-free-bytes", "8MiB", data_dir=small_filesystem / "data")
    assert readyz(server).status_code == 200
    url = create_upload(server.url, 10 * MIB)  # preallocated: the tmpfs has about 6 MiB left
    low = readyz(server)
    assert low.status_code == 503 and low.json()["checks"]["storage"].startswith("low: ")
    assert httpx.delete(url, headers=TUS).status_code == 204
    assert readyz(server).status_code == 200

    # The uploads folder made read-only by a read-only bind mount of itself (the database beside it keeps
    # its files open for writing, so the tmpfs itself cannot be remounted).
    uploads = str(server.data_dir / "uploads")
    subprocess.run(["mount", "--bind", uploads, uploads], check=True)
    try:
        subprocess.run(["mount", "-o", "remount,bind,ro", uploads], check=True)
        broken = readyz(server)
        assert broken.status_code == 503
        assert broken.json()["checks"]["storage"].startswith("failed: OSError")
        assert "Read-only file system" in broken.json()["checks"]["storage"]
    finally:
        subprocess.run(["umount", uploads], check=True)
    assert readyz(server).status_code == 200
