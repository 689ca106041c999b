"""The connection layer facing the open Internet (issue 11): departed clients release their sockets at once,
and the answers the HTTP layer gives on its own reach the client before the connection closes."""

from __future__ import annotations

import socket
import subprocess
import time

from server_process import ServerProcess

RELEASE_S = 1.0  # closed peers are released within a second


def close_wait_sockets(port: int) -> int:
    """The server's sockets on ``port`` in CLOSE-WAIT: the peer closed, the server has not."""
    out = subprocess.run(
        ["ss", "-Htan", "state", "close-wait", "sport", f"= :{port}"], capture_output=True, text=True, check=True
    ).stdout
    return len(out.splitlines())


def wait_for_close_wait(port: int, count: int, timeout_s: float) -> float:
    """Seconds until the server has at most ``count`` CLOSE-WAIT sockets (fails after ``timeout_s``)."""
    start = time.monotonic()
    while (found := close_wait_sockets(port)) > count:
        elapsed = time.monotonic() - start
        assert elapsed < timeout_s, f"{found} sockets still in CLOSE-WAIT after {elapsed:.1f} s"
        time.sleep(0.02)
    return time.monotonic() - start


def test_a_departed_client_is_released_at_once(tusedge_server: ServerProcess) -> None:
    """issue 11.1: a client that closes right after its answer (the connection idle, kept alive) is noticed
    at once; its socket does not sit in CLOSE-WAIT until --keep-alive-s (60 s)."""
    port = tusedge_server.port
    for _ in range(50):
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(b"OPTIONS /files/ HTTP/1.1\r\nHost: localhost\r\n\r\n")
            assert sock.recv(65536).startswith(b"HTTP/1.1 204")
    wait_for_close_wait(port, 0, RELEASE_S)
