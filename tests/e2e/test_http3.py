"""tus over HTTP/3 (QUIC) against a real tusedge server: Alt-Svc, complete uploads with resume through our
H3Transport, stream resets, flow control of request bodies, and Chromium uploading over QUIC."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import re
import selectors
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from quic_browser import CHROMIUM, page_server, quic_came_through_a_retry, quic_response_headers, run_chromium_over_quic
from quic_trace import TracedH3Transport
from server_process import ROOT, ServerFactory, ServerProcess
from tls_servers import https_server, make_cert

from tusedge.client.http3 import PIECE_BYTES, UNSENT_LIMIT, H3Transport
from tusedge.server.hypercorn_fixes.quic import (
    QUIC_MAX_DATA_BYTES,
    QUIC_MAX_STREAM_DATA_BYTES,
    UDP_RECEIVE_BUFFER_BYTES,
)
from tusedge.tls import ssl_context_for

MiB = 1024 * 1024
TUS = {"Tus-Resumable": "1.0.0"}
OCTETS = {**TUS, "Content-Type": "application/offset+octet-stream"}


def h3_server(server_factory: ServerFactory, tmp_path: Path, *flags: str) -> tuple[ServerProcess, Path]:
    return https_server(server_factory, tmp_path, "--http3", *flags)


def h3_client(certfile: Path, **options: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=H3Transport(verify=str(certfile), **options), timeout=60)


async def create(client: httpx.AsyncClient, server: ServerProcess, length: int) -> str:
    created = await client.post(server.url, headers={**TUS, "Upload-Length": str(length)})
    assert created.status_code == 201, created.text
    assert created.http_version == "HTTP/3"
    return created.headers["Location"]


async def head_offset(client: httpx.AsyncClient, url: str) -> int:
    head = await client.head(url, headers=TUS)
    assert head.status_code == 200, head.text
    return int(head.headers["Upload-Offset"])


async def wait_for_offset_above(client: httpx.AsyncClient, url: str, floor: int, timeout_s: float = 15) -> int:
    """HEAD until the offset passes ``floor`` (the server commits what arrived once the request ends)."""
    deadline = time.monotonic() + timeout_s
    while True:
        offset = await head_offset(client, url)
        if offset > floor or time.monotonic() > deadline:
            return offset
        await asyncio.sleep(0.1)


async def patch_rest(client: httpx.AsyncClient, url: str, data: bytes, attempts: int = 3) -> httpx.Response:
    """What a tus client does after an interruption: HEAD, PATCH the rest; on 409 ask again."""
    for _ in range(attempts):
        offset = await head_offset(client, url)
        response = await client.patch(url, content=data[offset:], headers={**OCTETS, "Upload-Offset": str(offset)})
        if response.status_code != 409:
            return response
    raise AssertionError(f"still 409 after {attempts} attempts")


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class SourceGone(Exception):
    """What a body iterator raises when its source fails mid-upload."""


async def failing_body(sent: bytes, piece: int = 512 * 1024) -> AsyncIterator[bytes]:
    """Yields ``sent``, lets it go out, then fails: the transport resets the request's stream."""
    for start in range(0, len(sent), piece):
        yield sent[start : start + piece]
    await asyncio.sleep(0.3)
    raise SourceGone


# --- Alt-Svc ----------------------------------------------------------------------------------------------
async def test_alt_svc_names_the_quic_port_which_is_the_tcp_port(server_factory: ServerFactory, tmp_path: Path) -> None:
    """With --http3 (and --port 0) every response announces h3 on the port the client used, and QUIC
    really answers on that UDP port."""
    server, certfile = h3_server(server_factory, tmp_path)
    async with httpx.AsyncClient(http2=True, verify=ssl_context_for(certfile)) as client:
        response = await client.options(server.url)
    assert response.http_version == "HTTP/2"
    assert response.headers.get_list("alt-svc") == [f'h3=":{server.port}"; ma=3600']
    async with h3_client(certfile) as client:
        response = await client.options(f"https://127.0.0.1:{server.port}/files/")
    assert response.status_code == 204
    assert response.http_version == "HTTP/3"
    assert response.headers["server"] == "hypercorn-h3"  # the server saw HTTP/3, not only our client


async def test_no_alt_svc_without_http3(server_factory: ServerFactory, tmp_path: Path) -> None:
    certfile, keyfile = make_cert(tmp_path)
    tls_only = server_factory("--certfile", str(certfile), "--keyfile", str(keyfile))
    plain = server_factory()
    async with httpx.AsyncClient(http2=True, verify=ssl_context_for(certfile)) as client:
        for server in (tls_only, plain):
            response = await client.options(server.url)
            assert response.status_code == 204
            assert "alt-svc" not in response.headers


# --- the transport's connections ----------------------------------------------------------------------------
async def test_quic_handshake_verifies_the_certificate(server_factory: ServerFactory, tmp_path: Path) -> None:
    """verify=<cert file> trusts our self-signed certificate, the default CA bundle does not, and
    verify=False skips the check."""
    server, certfile = h3_server(server_factory, tmp_path)
    async with httpx.AsyncClient(transport=H3Transport(verify=True), timeout=10) as client:
        with pytest.raises(httpx.ConnectError, match="certificate"):
            await client.options(server.url)
    for verify in (str(certfile), False):
        async with httpx.AsyncClient(transport=H3Transport(verify=verify), timeout=10) as client:
            response = await client.options(server.url)
            assert response.status_code == 204 and response.http_version == "HTTP/3"


async def test_no_quic_answer_is_a_connect_timeout() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:  # holds a UDP port, never answers
        silent.bind(("127.0.0.1", 0))
        port = silent.getsockname()[1]
        timeout = httpx.Timeout(10, connect=0.5)
        async with httpx.AsyncClient(transport=H3Transport(verify=False), timeout=timeout) as client:
            started = time.monotonic()
            with pytest.raises(httpx.ConnectTimeout):
                await client.options(f"https://127.0.0.1:{port}/files/")
            assert time.monotonic() - started < 5


async def test_plain_http_urls_are_not_for_http3() -> None:
    async with httpx.AsyncClient(transport=H3Transport()) as client:
        with pytest.raises(httpx.UnsupportedProtocol):
            await client.options("http://127.0.0.1:1/files/")


# --- uploads ----------------------------------------------------------------------------------------------
async def test_upload_over_http3_resumes_after_the_connection_was_closed_mid_body(
    server_factory: ServerFactory, tmp_path: Path
) -> None:
    """Create, several PATCHes and a HEAD over HTTP/3; then the client closes its QUIC connection in the
    middle of a PATCH body. A new client asks HEAD where to go on, sends the rest, the file is intact."""
    server, certfile = h3_server(server_factory, tmp_path)
    data = os.urandom(16 * MiB + 4321)
    offset = 0
    async with h3_client(certfile) as client:
        url = await create(client, server, len(data))
        for size in (1 * MiB, 2 * MiB + 17, 1 * MiB):
            patched = await client.patch(
                url, content=data[offset : offset + size], headers={**OCTETS, "Upload-Offset": str(offset)}
            )
            assert patched.status_code == 204, patched.text
            assert patched.http_version == "HTTP/3"
            assert patched.headers["server"] == "hypercorn-h3"
            offset += size
            assert int(patched.headers["Upload-Offset"]) == offset
        assert await head_offset(client, url) == offset

    transport = H3Transport(verify=str(certfile))
    doomed = httpx.AsyncClient(transport=transport, timeout=60)
    handed_over = asyncio.Event()
    cut_at = offset + 4 * MiB

    async def body() -> AsyncIterator[bytes]:
        for start in range(offset, cut_at, 256 * 1024):
            yield data[start : start + 256 * 1024]
        handed_over.set()
        await asyncio.Event().wait()  # never ends: the connection is closed first

    patch = asyncio.create_task(
        doomed.patch(
            url,
            content=body(),
            headers={**OCTETS, "Upload-Offset": str(offset), "Content-Length": str(len(data) - offset)},
        )
    )
    await asyncio.wait_for(handed_over.wait(), 60)
    await asyncio.sleep(0.3)  # let what QUIC has buffered go out
    await transport.aclose()  # CONNECTION_CLOSE with the PATCH still open
    with contextlib.suppress(httpx.HTTPError):
        await asyncio.wait_for(patch, 10)
    await doomed.aclose()

    async with h3_client(certfile) as client:
        resumed_at = await wait_for_offset_above(client, url, offset)
        assert offset < resumed_at <= cut_at, "the server kept none (or more than was sent) of the cut PATCH"
        rest = await client.patch(url, content=data[resumed_at:], headers={**OCTETS, "Upload-Offset": str(resumed_at)})
        assert rest.status_code == 204, rest.text
        assert int(rest.headers["Upload-Offset"]) == len(data)
        download = await client.get(url)
        assert download.http_version == "HTTP/3"
        assert sha256(download.content) == sha256(data)


_KILLED_CLIENT = """
import asyncio, sys
import httpx
from tusedge.client.http3 import H3Transport

cert, url, offset, cut, path = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]

async def main() -> None:
    data = open(path, "rb").read()

    async def body():
        for start in range(offset, cut, 262144):
            yield data[start : min(start + 262144, cut)]
        print("sent", flush=True)
        await asyncio.Event().wait()

    headers = {"Tus-Resumable": "1.0.0", "Content-Type": "application/offset+octet-stream",
               "Upload-Offset": str(offset), "Content-Length": str(len(data) - offset)}
    async with httpx.AsyncClient(transport=H3Transport(verify=cert), timeout=60) as client:
        await client.patch(url, content=body(), headers=headers)

asyncio.run(main())
"""


def _wait_for_line(proc: subprocess.Popen[str], expected: str, timeout_s: float) -> None:
    assert proc.stdout is not None
    with selectors.DefaultSelector() as selector:
        selector.register(proc.stdout, selectors.EVENT_READ)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if selector.select(timeout=0.2):
                line = proc.stdout.readline()
                if line.strip() == expected:
                    return
                if not line:
                    break
    raise AssertionError(f"the client never printed {expected!r}")


async def test_upload_over_http3_is_taken_over_after_the_client_process_was_killed(
    server_factory: ServerFactory, tmp_path: Path
) -> None:
    """kill -9 of a client mid-PATCH sends nothing at all (no CONNECTION_CLOSE, no FIN): the server's
    request just stops receiving. A new client's PATCH takes the upload over from the silent request."""
    server, certfile = h3_server(server_factory, tmp_path, "--stale-lock-s", "1")
    data = os.urandom(8 * MiB + 99)
    source = tmp_path / "source.bin"
    source.write_bytes(data)
    async with h3_client(certfile) as client:
        url = await create(client, server, len(data))
        first = await client.patch(url, content=data[: 1 * MiB], headers={**OCTETS, "Upload-Offset": "0"})
        assert first.status_code == 204
    proc = subprocess.Popen(
        [sys.executable, "-c", _KILLED_CLIENT, str(certfile), url, str(1 * MiB), str(5 * MiB), str(source)],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=ROOT,
    )  # fmt: skip
    try:
        _wait_for_line(proc, "sent", 60)
        await asyncio.sleep(0.3)
    finally:
        proc.kill()
        proc.wait(10)

    async with h3_client(certfile) as client:
        started = time.monotonic()
        rest = await patch_rest(client, url, data)
        assert rest.status_code == 204, rest.text
        assert time.monotonic() - started < 15
        assert int(rest.headers["Upload-Offset"]) == len(data)
        assert sha256((await client.get(url)).content) == sha256(data)


async def test_failing_body_resets_its_stream_only_and_the_server_keeps_what_arrived(
    server_factory: ServerFactory, tmp_path: Path
) -> None:
    """A request body that fails mid-way resets that QUIC stream (H3_REQUEST_CANCELLED): the server ends
    the request as a disconnect and commits what it got, and the same connection serves the retry."""
    server, certfile = h3_server(server_factory, tmp_path)
    data = os.urandom(12 * MiB + 1)
    async with h3_client(certfile) as client:
        url = await create(client, server, len(data))
        with pytest.raises(SourceGone):
            await client.patch(url, content=failing_body(data[: 6 * MiB]), headers={**OCTETS, "Upload-Offset": "0"})
        kept = await wait_for_offset_above(client, url, 0)
        assert 0 < kept <= 6 * MiB
        rest = await client.patch(url, content=data[kept:], headers={**OCTETS, "Upload-Offset": str(kept)})
        assert rest.status_code == 204, rest.text
        # Stream ids only grow on one connection; a new connection would start again at 0.
        assert rest.extensions["stream_id"] > 4
        assert sha256((await client.get(url)).content) == sha256(data)


async def test_early_response_to_a_large_body_leaves_http3_serving(
    server_factory: ServerFactory, tmp_path: Path
) -> None:
    """A PATCH with a wrong offset is answered 409 before its body is read; the body data still in flight
    must not take the server's QUIC endpoint down (it used to, in Hypercorn's datagram loop)."""
    server, certfile = h3_server(server_factory, tmp_path)
    async with h3_client(certfile) as client:
        url = await create(client, server, 16 * MiB)
        wrong = await client.patch(url, content=os.urandom(8 * MiB), headers={**OCTETS, "Upload-Offset": "5"})
        assert wrong.status_code == 409
    async with h3_client(certfile, idle_timeout=5.0) as fresh:  # a new connection, new handshake
        assert await head_offset(fresh, url) == 0
        good = await fresh.patch(url, content=b"x" * 1000, headers={**OCTETS, "Upload-Offset": "0"})
        assert good.status_code == 204


async def test_concurrent_requests_share_one_quic_connection(server_factory: ServerFactory, tmp_path: Path) -> None:
    server, certfile = h3_server(server_factory, tmp_path)
    async with h3_client(certfile) as client:
        urls = [await create(client, server, 100) for _ in range(3)]
        responses = await asyncio.gather(
            *(client.patch(url, content=b"y" * 100, headers={**OCTETS, "Upload-Offset": "0"}) for url in urls)
        )
        assert [r.status_code for r in responses] == [204, 204, 204]
        stream_ids = sorted(r.extensions["stream_id"] for r in responses)
        # Client-initiated bidirectional streams of one connection: 0, 4, 8, ...; the three POSTs took
        # 0, 4 and 8, so one connection carried all six requests.
        assert stream_ids == [12, 16, 20]


async def test_request_body_is_pulled_only_as_fast_as_the_server_acknowledges(
    server_factory: ServerFactory, tmp_path: Path
) -> None:
    """Bounded memory: while the server is frozen (SIGSTOP) nothing is acknowledged, and the transport
    stops taking chunks from the body iterator once ``send_buffer_bytes`` are waiting for an ACK."""
    server, certfile = h3_server(server_factory, tmp_path)
    size, chunk = 48 * MiB, 256 * 1024
    block = os.urandom(chunk)
    pulled = 0

    async def body() -> AsyncIterator[bytes]:
        nonlocal pulled
        for _ in range(size // chunk):
            pulled += chunk
            yield block

    send_buffer = 2 * MiB
    async with h3_client(certfile, send_buffer_bytes=send_buffer) as client:
        url = await create(client, server, size)
        patch = asyncio.create_task(
            client.patch(url, content=body(), headers={**OCTETS, "Upload-Offset": "0", "Content-Length": str(size)})
        )
        deadline = time.monotonic() + 60
        while pulled < 8 * MiB:
            assert time.monotonic() < deadline and not patch.done(), "the upload did not get going"
            await asyncio.sleep(0.01)
        os.kill(server.pid, signal.SIGSTOP)
        try:
            at_stop = pulled
            await asyncio.sleep(1.0)
            settled = pulled
            await asyncio.sleep(1.0)
            assert pulled == settled, "chunks were still taken while nothing was acknowledged"
            assert settled - at_stop <= send_buffer + UNSENT_LIMIT + PIECE_BYTES + chunk
        finally:
            os.kill(server.pid, signal.SIGCONT)
        response = await asyncio.wait_for(patch, 120)
        assert response.status_code == 204, response.text
        assert int(response.headers["Upload-Offset"]) == size


# --- what the Hypercorn fixes are for (tusedge/server/hypercorn_fixes/) --------------------------------------
async def test_quic_server_starts_with_large_receive_windows(server_factory: ServerFactory, tmp_path: Path) -> None:
    """The server's transport parameters give a new connection 16 MiB and each stream 8 MiB of credit
    (aioquic's 1 MiB makes the first megabytes of every upload wait for credit)."""
    server, certfile = h3_server(server_factory, tmp_path)
    transport = TracedH3Transport(verify=str(certfile))
    async with httpx.AsyncClient(transport=transport, timeout=30) as client:
        assert (await client.options(server.url)).status_code == 204
    (parameters,) = [trace.remote_parameters for trace in transport.logger.traces]
    assert parameters["initial_max_data"] == QUIC_MAX_DATA_BYTES
    assert parameters["initial_max_stream_data_bidi_remote"] == QUIC_MAX_STREAM_DATA_BYTES


def _udp_receive_buffer(port: int) -> int:
    """SO_RCVBUF of the UDP socket bound to ``port``, as the kernel reports it (``ss``: rb, doubled)."""
    out = subprocess.run(["ss", "-uamnH", "sport", "=", f":{port}"], capture_output=True, text=True, check=True)
    match = re.search(r"rb(\d+)", out.stdout)
    assert match, out.stdout
    return int(match.group(1))


async def test_quic_socket_asks_for_a_large_receive_buffer(server_factory: ServerFactory, tmp_path: Path) -> None:
    """A burst of datagrams waits in the kernel while the server is busy instead of being dropped: the QUIC
    socket asks for 4 MiB (the kernel grants up to net.core.rmem_max and reports twice that)."""
    server, certfile = h3_server(server_factory, tmp_path)
    async with h3_client(certfile) as client:  # QUIC is served (the socket is bound before that)
        assert (await client.options(server.url)).status_code == 204
    rmem_max = int(Path("/proc/sys/net/core/rmem_max").read_text())
    assert _udp_receive_buffer(server.port) == 2 * min(UDP_RECEIVE_BUFFER_BYTES, rmem_max)


async def test_an_idle_http3_server_stops_at_once(server_factory: ServerFactory, tmp_path: Path) -> None:
    """SIGTERM with no QUIC packet arriving: the server is gone long before the 5 s graceful timeout,
    after serving HTTP/3 (its datagram loop used to wait for a packet to notice the stop)."""
    server, certfile = h3_server(server_factory, tmp_path)
    async with h3_client(certfile) as client:
        assert (await client.options(server.url)).status_code == 204
    started = time.monotonic()
    server.stop()
    assert time.monotonic() - started < 3


async def test_an_upload_over_http3_loses_no_packets_while_the_server_writes(
    server_factory: ServerFactory, tmp_path: Path
) -> None:
    """While the app is busy (disk writes, fsync), datagrams wait for the QUIC state machine instead of
    being dropped: a 48 MiB upload over loopback has (almost) no packet declared lost by the client."""
    server, certfile = h3_server(server_factory, tmp_path)
    data = os.urandom(48 * MiB)
    transport = TracedH3Transport(verify=str(certfile))
    async with httpx.AsyncClient(transport=transport, timeout=120) as client:
        url = await create(client, server, len(data))
        response = await client.patch(url, content=data, headers={**OCTETS, "Upload-Offset": "0"})
        assert response.status_code == 204, response.text
    packets = len(data) // 1100
    assert transport.logger.lost < packets // 200, f"{transport.logger.lost} of ~{packets} packets lost"


async def test_a_request_answered_without_reading_its_body_leaves_http3_serving(
    server_factory: ServerFactory, tmp_path: Path
) -> None:
    """A PATCH at the wrong offset is answered 409 without using its body, while the body still streams in:
    the refused PATCH changes nothing, the same connection goes on carrying bodies, and a new connection is
    served. (With Hypercorn's one datagram loop the full queue of the finished request held that loop, and
    no other HTTP/3 request of the process was served again; see docs/hypercorn-fixes.md, "Removed".)"""
    server, certfile = h3_server(server_factory, tmp_path)
    data = os.urandom(16 * MiB)
    for _ in range(3):
        async with h3_client(certfile) as client:
            url = await create(client, server, 32 * MiB)
            # A first upload on the connection opens the client's congestion window: the refused PATCH's body
            # then follows its headers at once.
            patched = await client.patch(url, content=data[: 4 * MiB], headers={**OCTETS, "Upload-Offset": "0"})
            assert patched.status_code == 204
            refused = await client.patch(url, content=data, headers={**OCTETS, "Upload-Offset": "0"})
            assert refused.status_code == 409, refused.text
            head = await client.head(url, headers=TUS)
            assert head.status_code == 200 and head.headers["Upload-Offset"] == str(4 * MiB)
            # The same connection goes on carrying bodies.
            rest = await client.patch(url, content=data[: 12 * MiB], headers={**OCTETS, "Upload-Offset": str(4 * MiB)})
            assert rest.status_code == 204
        async with h3_client(certfile, idle_timeout=5.0) as fresh:
            assert (await fresh.options(server.url)).status_code == 204


async def test_a_request_the_client_cancelled_is_answered_without_an_error(
    server_factory: ServerFactory, tmp_path: Path
) -> None:
    """The client resets its request and stops reading (RESET_STREAM + STOP_SENDING): the app keeps what
    arrived and answers into a stream that is gone, which must be dropped quietly, not raise in the app
    (Hypercorn logged "Error in ASGI Framework" with a traceback for each such request)."""
    server, certfile = h3_server(server_factory, tmp_path)
    data = os.urandom(4 * MiB)
    async with h3_client(certfile) as client:
        url = await create(client, server, len(data))
        with pytest.raises(SourceGone):
            await client.patch(url, content=failing_body(data[: 1 * MiB]), headers={**OCTETS, "Upload-Offset": "0"})
        assert await wait_for_offset_above(client, url, 0) > 0
    server.stop()  # graceful: every request has finished, and logged what went wrong
    log = "".join(server.log)
    assert "Traceback" not in log and "Error in ASGI" not in log, log


# --- Chromium ---------------------------------------------------------------------------------------------

_PAGE = """<!doctype html><meta charset="utf-8"><script>
(async () => {
  const params = new URLSearchParams(location.search);
  const endpoint = params.get("endpoint"), size = Number(params.get("size"));
  const report = (result) => fetch("/result", {method: "POST", body: JSON.stringify(result)});
  try {
    const data = new Uint8Array(size);
    for (let i = 0; i < size; i++) data[i] = (i * 31 + 7) & 255;
    const tus = {"Tus-Resumable": "1.0.0"};
    const created = await fetch(endpoint, {method: "POST", headers: {...tus, "Upload-Length": String(size)}});
    const url = created.headers.get("Location");
    const statuses = [created.status];
    const half = size >> 1;
    for (const [start, end] of [[0, half], [half, size]]) {
      const patched = await fetch(url, {method: "PATCH", body: data.slice(start, end), headers: {...tus,
        "Upload-Offset": String(start), "Content-Type": "application/offset+octet-stream"}});
      statuses.push(patched.status);
    }
    const head = await fetch(url, {method: "HEAD", headers: tus});
    await report({url, statuses, offset: head.headers.get("Upload-Offset")});
  } catch (error) {
    await report({error: String(error)});
  }
})();
</script>"""


@pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (Debian: apt-get install chromium)")
@pytest.mark.parametrize("workers", ["1", "2"])
def test_chromium_uploads_over_http3_with_quic_forced(
    server_factory: ServerFactory, tmp_path: Path, workers: str
) -> None:
    """A real browser: headless Chromium with QUIC forced for the server's origin and our self-signed
    certificate pinned by SPKI runs fetch() POST, two PATCHes and HEAD; its net log shows the answers
    came over QUIC from Hypercorn's HTTP/3, and the stored file is what the page sent. With 2 workers
    its connection comes through a QUIC Retry (the net log shows it) and is steered by connection id."""
    assert CHROMIUM is not None
    server, certfile = h3_server(server_factory, tmp_path, "--workers", workers)
    if workers != "1":
        server.wait_for_workers(int(workers))
    size = 3_000_001
    expected = bytes((i * 31 + 7) & 255 for i in range(size))
    netlog = tmp_path / "netlog.json"
    with page_server(_PAGE) as (page_port, results):
        page = f"http://127.0.0.1:{page_port}/?endpoint={server.url}&size={size}"
        run_chromium_over_quic(
            page,
            certfile=certfile,
            quic_port=server.port,
            profile=tmp_path / "profile",
            netlog=netlog,
            results=results,
            timeout_s=90,
        )
    assert results, "the page never reported back"
    result = results[0]
    assert "error" not in result, result
    assert result["statuses"] == [201, 204, 204]
    assert result["offset"] == str(size)
    quic_headers = quic_response_headers(netlog)
    patch_answers = [h for h in quic_headers if ":status: 204" in h and f"upload-offset: {size}" in h]
    assert patch_answers, "Chromium did not get the last PATCH's answer over QUIC"
    assert "server: hypercorn-h3" in patch_answers[0]
    assert quic_came_through_a_retry(netlog) == (workers != "1")
    download = httpx.get(result["url"], verify=ssl_context_for(certfile), timeout=60)
    assert sha256(download.content) == sha256(expected)
