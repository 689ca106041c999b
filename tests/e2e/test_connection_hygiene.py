"""The connection layer facing the open Internet (issue 11): departed clients release their sockets at once,
and the answers the HTTP layer gives on its own reach the client before the connection closes."""

from __future__ import annotations

import asyncio
import base64
import os
import resource
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from rawhttp import OCTETS, TUS, RawRequest, RawResponse, create_upload, head_offset
from server_process import ServerFactory, ServerProcess
from tls_servers import https_server

from tusedge.client.http3 import H3Transport
from tusedge.protocol.metadata import MAX_REQUEST_HEAD_BYTES
from tusedge.server.hypercorn_fixes.tcp import REFUSED_IDLE_S
from tusedge.tls import ssl_context_for

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


def test_a_transfer_coding_other_than_chunked_is_501_with_a_reason(tusedge_server: ServerProcess) -> None:
    """RFC 9112 6.1: a transfer coding the server does not take is answered 501, by the HTTP layer itself
    (h11) through the error table: its own class and code, a one-line reason, the connection closed."""
    port = tusedge_server.port
    with connect(port) as sock:
        sock.sendall(creation_head(port, "Transfer-Encoding: gzip\r\n"))
        answer = response_on(sock)
        assert answer.status == 501
        assert answer.headers["connection"] == "close"
        assert answer.body.decode().startswith("ERR_UNSUPPORTED_TRANSFER_CODING: ")
        assert closed_by_server(sock)


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


SLOW_FLAGS = ("--min-body-rate", "1024", "--min-body-rate-window-s", "2")


def trickle_until_answered(sock: socket.socket, limit_s: float = 15) -> tuple[RawResponse | None, int]:
    """Send one byte a second until the server answers; returns the answer and the bytes trickled."""
    sent = 0
    start = time.monotonic()
    while time.monotonic() - start < limit_s:
        try:
            sock.sendall(b"x")
            sent += 1
        except (BrokenPipeError, ConnectionResetError):
            break
        sock.settimeout(1.0)
        try:
            return response_on(sock), sent
        except TimeoutError:
            continue
    return None, sent


def test_a_body_slower_than_the_minimum_rate_is_cut_and_what_arrived_is_kept(server_factory: ServerFactory) -> None:
    """--min-body-rate: a PATCH body trickled at 1 byte/s is answered 408 once it has been below the rate for a
    window; the bytes that arrived are committed as after a disconnect (HEAD gives them), and the upload's lock
    is released: the next PATCH from that offset succeeds at once."""
    server = server_factory(*SLOW_FLAGS)
    url = create_upload(server.url, 1000)
    with connect(server.port) as sock:
        path = url.removeprefix(server.origin)
        sock.sendall(
            f"PATCH {path} HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\nTus-Resumable: 1.0.0\r\n"
            "Content-Type: application/offset+octet-stream\r\nUpload-Offset: 0\r\nContent-Length: 1000\r\n\r\n".encode()
            + b"x" * 100
        )
        answer, trickled = trickle_until_answered(sock)
        assert answer is not None and answer.status == 408, "the trickled body was never cut"
        assert "slower than 1024 bytes/s" in answer.body.decode()
        assert answer.headers["connection"] == "close"
    offset = head_offset(url)
    assert 100 <= offset <= 100 + trickled
    rest = httpx.patch(url, content=b"y" * (1000 - offset), headers={**OCTETS, "Upload-Offset": str(offset)})
    assert rest.status_code == 204 and rest.headers["Upload-Offset"] == "1000"


@pytest.mark.parametrize("http", ["h2", "h3"])
async def test_the_minimum_body_rate_holds_over_http2_and_http3(
    server_factory: ServerFactory, tmp_path: Path, http: str
) -> None:
    """The rate is enforced above the transport: an HTTP/2 or HTTP/3 stream trickled at 1 byte/s is cut too."""
    server, certfile = https_server(server_factory, tmp_path, *SLOW_FLAGS, *(["--http3"] if http == "h3" else []))
    if http == "h3":
        client = httpx.AsyncClient(transport=H3Transport(verify=str(certfile)), timeout=60)
    else:
        client = httpx.AsyncClient(http1=False, http2=True, verify=ssl_context_for(certfile), timeout=60)
    async with client:
        created = await client.post(server.url, headers={**TUS, "Upload-Length": "1000"})
        assert created.http_version == ("HTTP/3" if http == "h3" else "HTTP/2")
        url = created.headers["Location"]

        async def trickle() -> AsyncIterator[bytes]:
            yield b"x" * 100
            for _ in range(30):
                await asyncio.sleep(1)
                yield b"x"

        def answered_408() -> bool:
            return any('"method":"PATCH"' in line and '"status":408' in line and f'"http":"{http}"' in line
                       for line in server.log)  # fmt: skip

        start = time.monotonic()
        patching = asyncio.create_task(client.patch(url, content=trickle(), headers={**OCTETS, "Upload-Offset": "0"}))
        # httpx reads the answer only once it has sent the whole body; the server's access log shows the cut.
        while not answered_408():
            assert time.monotonic() - start < 15, "the trickled HTTP/2 body was never cut"
            await asyncio.sleep(0.05)
        head = await client.head(url, headers=TUS)
        assert 100 <= int(head.headers["Upload-Offset"]) <= 100 + int(time.monotonic() - start) + 1
        patching.cancel()


def test_a_body_the_server_itself_reads_slowly_is_not_cut(server_factory: ServerFactory) -> None:
    """The minimum rate counts only time spent waiting for the client: an upload held below the rate by the
    server's own --client-bandwidth-bytes cap is never cut."""
    server = server_factory(*SLOW_FLAGS, "--client-bandwidth-bytes", "512")
    url = create_upload(server.url, 3 * KIB)
    answer = httpx.patch(url, content=b"z" * 3 * KIB, headers={**OCTETS, "Upload-Offset": "0"}, timeout=30)
    assert answer.status_code == 204 and answer.headers["Upload-Offset"] == str(3 * KIB)


def options_on(sock: socket.socket, port: int) -> RawResponse:
    sock.sendall(f"OPTIONS /files/ HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
    return response_on(sock)


def test_a_client_past_its_connection_cap_gets_429(server_factory: ServerFactory) -> None:
    """--client-max-connections: the connections of one address past the cap are answered 429 with the reason
    and closed; those within it go on being served, and once one closes a new one is served again."""
    server = server_factory("--client-max-connections", "3")
    port = server.port
    kept = [connect(port) for _ in range(3)]
    try:
        for sock in kept:
            assert options_on(sock, port).status == 204
        with connect(port) as extra:
            answer = options_on(extra, port)
            assert answer.status == 429 and answer.headers["connection"] == "close"
            assert "4 connections open; the limit is 3" in answer.body.decode()
            assert closed_by_server(extra)
        assert all(options_on(sock, port).status == 204 for sock in kept)  # the first three are untouched
        kept.pop().close()
        wait_for_close_wait(port, 0, RELEASE_S)
        deadline = time.monotonic() + 5
        while True:  # the server notices the close at once; poll until it has
            with connect(port) as again:
                if options_on(again, port).status == 204:
                    break
            assert time.monotonic() < deadline, "a connection closed but its place was not given back"
    finally:
        for sock in kept:
            sock.close()


def test_a_client_past_its_upload_cap_gets_429_before_any_lock(server_factory: ServerFactory) -> None:
    """--client-max-uploads: with one body in progress, the same address's next upload request is answered 429
    at once with the reason (it takes no lock and reads nothing); HEAD is not an upload and is served."""
    server = server_factory("--client-max-uploads", "1")
    first = create_upload(server.url, 1000)
    second = create_upload(server.url, 1000)
    with connect(server.port) as sock:
        path = first.removeprefix(server.origin)
        sock.sendall(
            f"PATCH {path} HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\nTus-Resumable: 1.0.0\r\n"
            "Content-Type: application/offset+octet-stream\r\nUpload-Offset: 0\r\nContent-Length: 1000\r\n\r\n".encode()
            + b"x" * 10
        )
        poll_offset_on_disk = time.monotonic() + 10
        while True:  # the first body is in progress once the server has taken its first bytes
            refused = httpx.patch(second, content=b"y" * 10, headers={**OCTETS, "Upload-Offset": "0"})
            if refused.status_code == 429:
                break
            assert refused.status_code == 204, refused.text  # the first had not started yet
            assert time.monotonic() < poll_offset_on_disk
            second = create_upload(server.url, 1000)
        assert "1 uploads in progress; the limit is 1" in refused.text
        assert head_offset(second) == 0
        sock.sendall(b"x" * 990)
        assert response_on(sock).status == 204
    done = httpx.patch(second, content=b"y" * 1000, headers={**OCTETS, "Upload-Offset": "0"})
    assert done.status_code == 204


def open_descriptors(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def nofile_limits(pid: int) -> tuple[int, int]:
    for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
        if line.startswith("Max open files"):
            soft, hard = line.split()[3:5]
            return int(soft), int(hard)
    raise AssertionError("no Max open files line")


def test_the_server_raises_its_descriptor_limit_to_the_hard_limit(server_factory: ServerFactory) -> None:
    """At start the server raises its soft RLIMIT_NOFILE to the hard limit, and says so."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    low = min(256, hard)
    resource.setrlimit(resource.RLIMIT_NOFILE, (low, hard))  # the server inherits it
    try:
        server = server_factory()
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    assert nofile_limits(server.pid) == (hard, hard)
    if low < hard:
        assert any(f"RLIMIT_NOFILE soft) from {low} to {hard}" in line for line in server.log), server.log


def test_connections_get_503_with_a_reason_before_descriptors_run_out(tusedge_server: ServerProcess) -> None:
    """With few descriptors left (the limit lowered under the running server with prlimit), new connections
    are answered 503 with the reason and closed while a reserve is still free, instead of the server failing
    to accept them (clients waiting in the listen queue, nothing logged); once connections close, new ones
    are served again."""
    port, pid = tusedge_server.port, tusedge_server.pid
    limit = open_descriptors(pid) + 60  # the reserve is 32 of these
    subprocess.run(["prlimit", "--pid", str(pid), f"--nofile={limit}:{limit}"], check=True)
    held: list[socket.socket] = []
    refused = None
    try:
        for _ in range(60):
            sock = connect(port)
            sock.settimeout(5)  # a connection the server could not accept would hang here
            held.append(sock)
            answer = options_on(sock, port)
            if answer.status == 503:
                refused = answer
                break
            assert answer.status == 204
        assert refused is not None, "no 503 before the descriptors ran out"
        assert "running out of file descriptors" in refused.body.decode()
        assert refused.headers["connection"] == "close"
        deadline = time.monotonic() + 10  # the server's log line is read from its output as it comes
        while not any("file descriptors run short" in line for line in tusedge_server.log):
            assert time.monotonic() < deadline, "the shortage was not logged"
            time.sleep(0.05)
        with connect(port) as idle:  # in the reserve too, and sends nothing: closed within REFUSED_IDLE_S
            idle.settimeout(REFUSED_IDLE_S + 5)
            assert idle.recv(1) == b""
    finally:
        for sock in held:
            sock.close()
    wait_for_close_wait(port, 0, RELEASE_S)
    deadline = time.monotonic() + 5
    while True:
        with connect(port) as sock:
            if options_on(sock, port).status == 204:
                break
        assert time.monotonic() < deadline, "still refused after the connections closed"


def test_behind_a_trusted_proxy_the_caps_count_the_forwarded_address(server_factory: ServerFactory) -> None:
    """With --trust-proxy the caps key on X-Forwarded-For, as the other per-client limits do: every
    connection comes from the proxy's address, and one client past its cap does not lock out the others."""
    server = server_factory("--trust-proxy", "--client-max-connections", "2", "--client-max-uploads", "1")
    port = server.port

    def options_from(sock: socket.socket, client: str) -> int:
        sock.sendall(
            f"OPTIONS /files/ HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nX-Forwarded-For: {client}\r\n\r\n".encode()
        )
        return response_on(sock).status

    kept = [connect(port) for _ in range(3)]
    try:
        assert [options_from(sock, "203.0.113.7") for sock in kept[:2]] == [204, 204]
        assert options_from(kept[2], "203.0.113.7") == 429  # a third connection of that client
        with connect(port) as other:
            assert options_from(other, "198.51.100.9") == 204  # another client behind the same proxy
    finally:
        for sock in kept:
            sock.close()

    url = create_upload(server.url, 1000)
    with connect(port) as sock:
        sock.sendall(
            f"PATCH {url.removeprefix(server.origin)} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nTus-Resumable: 1.0.0\r\n"
            "X-Forwarded-For: 203.0.113.7\r\nContent-Type: application/offset+octet-stream\r\nUpload-Offset: 0\r\n"
            "Content-Length: 1000\r\n\r\n".encode()
            + b"x" * 10
        )
        second = create_upload(server.url, 10)
        deadline = time.monotonic() + 10
        while True:  # once the first body is under way, the same client's next upload is refused
            same = httpx.patch(
                second, content=b"y" * 10, headers={**OCTETS, "Upload-Offset": "0", "X-Forwarded-For": "203.0.113.7"}
            )
            if same.status_code == 429:
                break
            assert same.status_code == 204 and time.monotonic() < deadline
            second = create_upload(server.url, 10)
        elsewhere = httpx.patch(
            second, content=b"y" * 10, headers={**OCTETS, "Upload-Offset": "0", "X-Forwarded-For": "198.51.100.9"}
        )
        assert elsewhere.status_code == 204
        sock.sendall(b"x" * 990)
        assert response_on(sock).status == 204
