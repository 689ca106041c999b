"""The connection layer facing the open Internet (issue 11): departed clients release their sockets at once,
and the answers the HTTP layer gives on its own reach the client before the connection closes."""

from __future__ import annotations

import base64
import socket
import subprocess
import time
from collections.abc import Iterator

import pytest
from rawhttp import RawRequest, RawResponse
from server_process import ServerFactory, ServerProcess

from tusedge.protocol.metadata import MAX_REQUEST_HEAD_BYTES

KIB = 1024
RELEASE_S = 1.0  # closed peers are released within a second


def connect(port: int, send_buffer: int | None = None) -> socket.socket:
    """A client socket; a small ``send_buffer`` makes a large head leave in many pieces, as over a network."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if send_buffer is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, send_buffer)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.settimeout(15)
    sock.connect(("127.0.0.1", port))
    return sock


def response_on(sock: socket.socket) -> RawResponse:
    reader = RawRequest.__new__(RawRequest)
    reader.sock = sock
    return reader.read_response()


def closed_by_server(sock: socket.socket) -> bool:
    """The server closed the connection (EOF, or a reset after it), reading what is left."""
    try:
        while sock.recv(65536):
            pass
    except ConnectionResetError:
        pass
    return True


def creation_head(port: int, extra: str) -> bytes:
    return (f"POST /files/ HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nTus-Resumable: 1.0.0\r\n"
            f"Upload-Length: 5\r\n{extra}\r\n").encode("latin-1")  # fmt: skip


def pieces(data: bytes, size: int) -> Iterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


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


def test_a_head_over_the_limit_is_answered_431_with_a_reason(tusedge_server: ServerProcess) -> None:
    """The HTTP layer's own 431 (a head still incomplete past the limit: it reads at most 64 KiB at a time)
    carries the error table's reason."""
    port = tusedge_server.port
    with connect(port, send_buffer=16 * KIB) as sock:
        head = creation_head(port, f"X-Padding: {'a' * (MAX_REQUEST_HEAD_BYTES + 70 * KIB)}\r\n")
        for piece in pieces(head, 8 * KIB):
            sock.sendall(piece)
        answer = response_on(sock)
        assert answer.status == 431
        assert answer.headers["connection"] == "close"
        assert f"larger than {MAX_REQUEST_HEAD_BYTES} bytes" in answer.body.decode()


def test_a_one_mib_head_gets_its_431_not_a_reset(tusedge_server: ServerProcess) -> None:
    """issue 11.5: the 431 reaches the client before the connection closes. The server refuses the head after
    80 KiB while the client is still sending; closing then would reset the connection, and the client (still
    writing) would never read the answer. Five clients in a row, each sending 1 MiB of headers."""
    port = tusedge_server.port
    head = creation_head(port, f"X-Padding: {'a' * 1024 * KIB}\r\n")
    for _ in range(5):
        with connect(port, send_buffer=16 * KIB) as sock:
            sock.sendall(head)
            assert response_on(sock).status == 431
            assert closed_by_server(sock)


@pytest.mark.parametrize("piece_bytes", [None, 4 * KIB], ids=["whole", "in-pieces"])
def test_one_head_size_limit_however_the_head_arrives(tusedge_server: ServerProcess, piece_bytes: int | None) -> None:
    """issue 11.5: a 60 KiB Upload-Metadata (under the 64 KiB metadata limit) is taken whether the head
    arrives in one read or in pieces, and a head over MAX_REQUEST_HEAD_BYTES is 431 either way (the HTTP
    layer's limit was 16 KiB for a head in pieces and none for a head that arrived whole)."""
    port = tusedge_server.port
    value = base64.b64encode(b"n" * (45 * KIB)).decode()  # 60 KiB of base64
    for extra, status in [
        (f"Upload-Metadata: filename {value}\r\n", 201),
        (f"Upload-Metadata: filename {value}\r\nX-Padding: {'a' * 24 * KIB}\r\n", 431),
    ]:
        with connect(port, send_buffer=None if piece_bytes is None else 8 * KIB) as sock:
            head = creation_head(port, extra)
            for piece in [head] if piece_bytes is None else pieces(head, piece_bytes):
                sock.sendall(piece)
            assert response_on(sock).status == status, extra[:40]


def test_content_length_with_transfer_encoding_is_400_and_the_connection_closed(
    tusedge_server: ServerProcess,
) -> None:
    """RFC 9112 6.3: both Content-Length and Transfer-Encoding: chunked is refused and the connection
    closed, so the request after it (smuggled, for a proxy that framed by Content-Length) is never served."""
    port = tusedge_server.port
    smuggled = f"OPTIONS /files/ HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode()
    with connect(port) as sock:
        sock.sendall(
            f"PATCH /files/x HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nTus-Resumable: 1.0.0\r\n"
            "Content-Type: application/offset+octet-stream\r\nUpload-Offset: 0\r\nContent-Length: 5\r\n"
            "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n".encode()
            + smuggled
        )
        answer = response_on(sock)
        assert answer.status == 400
        assert answer.headers["connection"] == "close"
        assert b"Content-Length and Transfer-Encoding" in answer.body
        rest = b""
        try:
            while chunk := sock.recv(65536):
                rest += chunk
        except ConnectionResetError:
            pass
        assert rest == b""  # no answer to the second request


def test_a_head_trickled_slower_than_the_header_timeout_gets_408(server_factory: ServerFactory) -> None:
    """--header-timeout-s: a head trickled at 1 byte/s is answered 408 (with its reason) once the timeout has
    passed since its first byte, and the connection is closed. Before, only --keep-alive-s (60 s) bounded it."""
    server = server_factory("--header-timeout-s", "1")
    with connect(server.port) as sock:
        start = time.monotonic()
        sock.sendall(b"POST /files/ HTTP/1.1\r\n")
        answer = None
        for byte in b"Tus-Resumable: 1.0.0\r\n":
            if time.monotonic() - start > 10:
                break
            try:
                sock.sendall(bytes([byte]))
            except (BrokenPipeError, ConnectionResetError):
                break
            sock.settimeout(1.0)
            try:
                answer = response_on(sock)
                break
            except TimeoutError:
                continue
        assert answer is not None and answer.status == 408, "no 408 while the head trickled"
        assert "did not arrive in time" in answer.body.decode()
        assert time.monotonic() - start < 10
