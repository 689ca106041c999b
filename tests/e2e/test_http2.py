"""tus over HTTP/2: HTTPS with ALPN (and HTTP/1.1 fallback), cleartext h2c, resume after a dead connection,
and parallel partial uploads multiplexed on one connection, against a real tusedge server."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import socket
import time
from collections.abc import AsyncIterator
from pathlib import Path

import h2.connection
import h2.events
import h2.settings
import httpx
from server_process import ServerFactory, ServerProcess
from tls_servers import https_server

from tusedge.server.hypercorn_fixes.h2 import H2_CONNECTION_WINDOW_BYTES, H2_MAX_FRAME_BYTES, H2_STREAM_WINDOW_BYTES
from tusedge.tls import ssl_context_for

MiB = 1024 * 1024
TUS = {"Tus-Resumable": "1.0.0"}
OCTETS = {**TUS, "Content-Type": "application/offset+octet-stream"}


def h2_client(certfile: Path) -> httpx.AsyncClient:
    return httpx.AsyncClient(http1=False, http2=True, verify=ssl_context_for(certfile), timeout=60)


async def wait_for_offset_above(client: httpx.AsyncClient, url: str, floor: int, timeout_s: float = 15) -> int:
    """HEAD until the offset passes ``floor`` (the server commits what arrived once it sees the disconnect)."""
    deadline = time.monotonic() + timeout_s
    while True:
        response = await client.head(url, headers=TUS)
        assert response.status_code == 200
        offset = int(response.headers["Upload-Offset"])
        if offset > floor or time.monotonic() > deadline:
            return offset
        await asyncio.sleep(0.1)


async def test_https_negotiates_http2_by_alpn_and_falls_back_to_http1(
    server_factory: ServerFactory, tmp_path: Path
) -> None:
    server, certfile = https_server(server_factory, tmp_path)
    async with httpx.AsyncClient(http2=True, verify=ssl_context_for(certfile)) as client:
        response = await client.options(server.url)
    assert response.status_code == 204
    assert response.http_version == "HTTP/2"
    assert response.headers["server"] == "hypercorn-h2"
    async with httpx.AsyncClient(http1=True, http2=False, verify=ssl_context_for(certfile)) as client:
        response = await client.options(server.url)
    assert response.http_version == "HTTP/1.1"
    assert response.headers["server"] == "hypercorn-h11"


async def test_cleartext_http2_with_prior_knowledge(tusedge_server: ServerProcess) -> None:
    """h2c: an HTTP/2 client that knows the server speaks it needs no TLS and no Upgrade."""
    assert tusedge_server.scheme == "http"
    data = os.urandom(3 * MiB + 5)
    async with httpx.AsyncClient(http1=False, http2=True, timeout=60) as client:
        created = await client.post(tusedge_server.url, headers={**TUS, "Upload-Length": str(len(data))})
        assert created.status_code == 201
        assert created.http_version == "HTTP/2"
        url = created.headers["Location"]
        patched = await client.patch(url, content=data, headers={**OCTETS, "Upload-Offset": "0"})
        assert patched.status_code == 204
        assert patched.headers["server"] == "hypercorn-h2"
        assert (await client.get(url)).content == data


def _server_settings_and_connection_window(port: int) -> tuple[dict[int, int], int]:
    """What a tusedge server tells a new HTTP/2 client: its SETTINGS and the connection window increment."""
    connection = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    connection.initiate_connection()
    settings: dict[int, int] = {}
    connection_window_increment = 0
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(connection.data_to_send())
        sock.settimeout(2)
        deadline = time.monotonic() + 10
        while (not settings or not connection_window_increment) and time.monotonic() < deadline:
            try:
                data = sock.recv(65536)
            except TimeoutError:
                break  # the server said all it had to say
            assert data, "the server closed the connection"
            for event in connection.receive_data(data):
                if isinstance(event, h2.events.RemoteSettingsChanged):
                    settings.update({code: change.new_value for code, change in event.changed_settings.items()})
                elif isinstance(event, h2.events.WindowUpdated) and event.stream_id == 0:
                    connection_window_increment += event.delta
            sock.sendall(connection.data_to_send())
    return settings, connection_window_increment


def test_http2_server_advertises_large_frames_and_windows(tusedge_server: ServerProcess) -> None:
    """The server's SETTINGS let a client send big DATA frames without waiting for window updates every
    32 KiB (h2's 16 KiB / 64 KiB defaults cost two thirds of upload throughput)."""
    settings, _ = _server_settings_and_connection_window(tusedge_server.port)
    assert settings[h2.settings.SettingCodes.MAX_FRAME_SIZE] == H2_MAX_FRAME_BYTES
    assert settings[h2.settings.SettingCodes.INITIAL_WINDOW_SIZE] == H2_STREAM_WINDOW_BYTES


def test_http2_server_opens_the_connection_window(tusedge_server: ServerProcess) -> None:
    """The connection window, shared by all streams, starts at 64 KiB whatever SETTINGS say; the server
    opens it at once with a WINDOW_UPDATE, so four parallel uploads on one connection do not wait on it."""
    _, increment = _server_settings_and_connection_window(tusedge_server.port)
    assert 65535 + increment == H2_CONNECTION_WINDOW_BYTES


async def test_upload_over_http2_resumes_after_the_connection_was_killed(
    server_factory: ServerFactory, tmp_path: Path
) -> None:
    """Create, several PATCHes and a HEAD over HTTP/2; then the connection dies in the middle of a PATCH
    body. A new client asks HEAD where to go on, sends the rest, and the download is the same file."""
    server, certfile = https_server(server_factory, tmp_path)
    data = os.urandom(20 * MiB + 12_345)
    offset = 0
    async with h2_client(certfile) as client:
        created = await client.post(server.url, headers={**TUS, "Upload-Length": str(len(data))})
        assert created.status_code == 201 and created.http_version == "HTTP/2"
        url = created.headers["Location"]
        for size in (1 * MiB, 3 * MiB + 17, 2 * MiB):
            patched = await client.patch(
                url, content=data[offset : offset + size], headers={**OCTETS, "Upload-Offset": str(offset)}
            )
            assert patched.status_code == 204, patched.text
            assert patched.http_version == "HTTP/2"
            offset += size
            assert int(patched.headers["Upload-Offset"]) == offset
        head = await client.head(url, headers=TUS)
        assert head.http_version == "HTTP/2"
        assert int(head.headers["Upload-Offset"]) == offset

    # A PATCH for everything left, whose connection is closed after 6 MiB of its body went out.
    doomed = h2_client(certfile)
    handed_over = asyncio.Event()
    cut_at = offset + 6 * MiB

    async def body() -> AsyncIterator[bytes]:
        for start in range(offset, cut_at, 256 * 1024):
            yield data[start : start + 256 * 1024]
        handed_over.set()
        await asyncio.Event().wait()  # never ends: the connection dies first

    patch = asyncio.create_task(
        doomed.patch(
            url,
            content=body(),
            headers={**OCTETS, "Upload-Offset": str(offset), "Content-Length": str(len(data) - offset)},
        )
    )
    await asyncio.wait_for(handed_over.wait(), 60)
    await doomed.aclose()
    patch.cancel()
    with contextlib.suppress(asyncio.CancelledError, httpx.HTTPError):
        await patch

    async with h2_client(certfile) as client:
        resumed_at = await wait_for_offset_above(client, url, offset)
        assert offset < resumed_at <= cut_at, "the server kept none (or more than was sent) of the cut PATCH"
        rest = await client.patch(url, content=data[resumed_at:], headers={**OCTETS, "Upload-Offset": str(resumed_at)})
        assert rest.status_code == 204, rest.text
        assert rest.http_version == "HTTP/2"
        assert int(rest.headers["Upload-Offset"]) == len(data)
        download = await client.get(url)
        assert download.http_version == "HTTP/2"
        assert hashlib.sha256(download.content).hexdigest() == hashlib.sha256(data).hexdigest()


async def test_concatenation_with_partials_multiplexed_on_one_http2_connection(
    server_factory: ServerFactory, tmp_path: Path
) -> None:
    """Four partial uploads PATCHed at the same time as four streams of one HTTP/2 connection (each body
    waits for all four to have started, so they cannot run one after another), then the final upload."""
    server, certfile = https_server(server_factory, tmp_path)
    parts = [os.urandom(5 * MiB + i) for i in range(4)]
    all_started = asyncio.Barrier(len(parts))

    def body(part: bytes) -> AsyncIterator[bytes]:
        async def chunks() -> AsyncIterator[bytes]:
            yield part[: 1024 * 1024]
            await asyncio.wait_for(all_started.wait(), 30)
            for start in range(1024 * 1024, len(part), 1024 * 1024):
                yield part[start : start + 1024 * 1024]

        return chunks()

    async with h2_client(certfile) as client:
        options = await client.options(server.url)
        assert "concatenation" in options.headers["Tus-Extension"].split(",")
        urls = []
        for part in parts:
            created = await client.post(
                server.url, headers={**TUS, "Upload-Length": str(len(part)), "Upload-Concat": "partial"}
            )
            assert created.status_code == 201, created.text
            urls.append(created.headers["Location"])
        responses = await asyncio.gather(
            *(
                client.patch(
                    url,
                    content=body(part),
                    headers={**OCTETS, "Upload-Offset": "0", "Content-Length": str(len(part))},
                )
                for url, part in zip(urls, parts, strict=True)
            )
        )
        assert [r.status_code for r in responses] == [204] * len(parts)
        assert {r.http_version for r in responses} == {"HTTP/2"}
        streams = {id(r.extensions["network_stream"]) for r in responses}
        assert len(streams) == 1, "the partials did not share one connection"
        assert len({r.extensions["stream_id"] for r in responses}) == len(parts)

        final = await client.post(server.url, headers={**TUS, "Upload-Concat": "final;" + " ".join(urls)})
        assert final.status_code == 201, final.text
        final_url = final.headers["Location"]
        head = await client.head(final_url, headers=TUS)
        total = sum(len(part) for part in parts)
        assert head.headers["Upload-Length"] == str(total)
        assert head.headers["Upload-Offset"] == str(total)
        download = await client.get(final_url)
        assert download.http_version == "HTTP/2"
        assert hashlib.sha256(download.content).hexdigest() == hashlib.sha256(b"".join(parts)).hexdigest()


def _h2_exchange(sock: socket.socket, connection: h2.connection.H2Connection, stream_id: int) -> dict[str, str]:
    """Read until ``stream_id``'s response has ended; its headers (the server closing first fails)."""
    headers: dict[str, str] = {}
    ended = False
    while not ended:
        data = sock.recv(65536)
        assert data, f"the server closed the connection before answering stream {stream_id}"
        for event in connection.receive_data(data):
            if isinstance(event, h2.events.ResponseReceived) and event.stream_id == stream_id:
                headers = {name.decode(): value.decode() for name, value in event.headers}
            elif isinstance(event, h2.events.StreamEnded) and event.stream_id == stream_id:
                ended = True
            elif isinstance(event, h2.events.ConnectionTerminated):
                raise AssertionError(f"the server ended the connection: {event}")
        sock.sendall(connection.data_to_send())
    return headers


def test_http2_body_sent_after_its_answer_leaves_the_connection_up(tusedge_server: ServerProcess) -> None:
    """A PATCH at the wrong offset is answered 409 before its body is read; the client may still send that
    body (RFC 9113 8.1). Hypercorn looked the stream up for each DATA frame after it had forgotten it: a
    KeyError ended the whole connection, and every other upload multiplexed on it. The late bytes are
    acknowledged and dropped; the next request on the same connection is answered."""
    created = httpx.post(tusedge_server.url, headers={**TUS, "Upload-Length": "100"})
    assert created.status_code == 201
    path = httpx.URL(created.headers["Location"]).path
    connection = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    connection.initiate_connection()
    authority = f"127.0.0.1:{tusedge_server.port}"

    def request(stream_id: int, method: str, extra: list[tuple[str, str]], end_stream: bool) -> None:
        head = [(":method", method), (":scheme", "http"), (":authority", authority), (":path", path)]
        connection.send_headers(stream_id, [*head, ("tus-resumable", "1.0.0"), *extra], end_stream=end_stream)

    with socket.create_connection(("127.0.0.1", tusedge_server.port), timeout=10) as sock:
        patch = [("upload-offset", "50"), ("content-type", "application/offset+octet-stream"), ("content-length", "50")]
        request(1, "PATCH", patch, end_stream=False)
        sock.sendall(connection.data_to_send())
        assert _h2_exchange(sock, connection, 1)[":status"] == "409"
        connection.send_data(1, b"x" * 50, end_stream=True)  # the body, after its answer
        request(3, "HEAD", [], end_stream=True)
        sock.sendall(connection.data_to_send())
        head = _h2_exchange(sock, connection, 3)
    assert head[":status"] == "200"
    assert head["upload-offset"] == "0"
