"""HTTP/2 facing the open Internet (issue 11), over raw frames (tests/e2e/h2raw.py) against a real server: the
one header-size limit answered 431 on its stream, DATA after an answer, a header block that never ends, and
connections that send nothing."""

from __future__ import annotations

import socket
import time
from pathlib import Path
from urllib.parse import urlsplit

import h2.errors
import pytest
from h2raw import H2Raw
from hyperframe.frame import ContinuationFrame, HeadersFrame
from server_process import ServerFactory, ServerProcess
from tls_servers import https_server

from tusedge.protocol.metadata import MAX_METADATA_BYTES, MAX_REQUEST_HEAD_BYTES
from tusedge.server.hypercorn_fixes.h2 import H2_HEADER_LIST_DECODED_BYTES
from tusedge.tls import ssl_context_for

KIB = 1024
TUS = [("tus-resumable", "1.0.0")]


def options(client: H2Raw) -> int | None:
    return client.answer(client.request("OPTIONS", "/files/", [])).status


@pytest.fixture
def client(tusedge_server: ServerProcess) -> H2Raw:
    connection = H2Raw(tusedge_server.port)
    connection.start()
    return connection


def test_metadata_the_server_takes_is_taken_over_http2_before_settings_are_acknowledged(client: H2Raw) -> None:
    """A client sends its first request with its preface, before it has our SETTINGS: h2 then bounded header
    lists at its own 64 KiB, so metadata that HTTP/1.1 takes (up to 64 KiB) ended the HTTP/2 connection."""
    metadata = "filename " + "A" * ((MAX_METADATA_BYTES - len("filename ")) // 4 * 4)  # base64: 4 at a time
    stream = client.request("POST", "/files/", [*TUS, ("upload-length", "5"), ("upload-metadata", metadata)])
    answer = client.answer(stream)
    assert answer.status == 201, answer


@pytest.mark.parametrize("size", [100 * KIB, H2_HEADER_LIST_DECODED_BYTES - 4 * KIB])
def test_a_header_list_over_the_limit_gets_431_on_its_stream(client: H2Raw, size: int) -> None:
    """RFC 9113 10.5.1: past the advertised SETTINGS_MAX_HEADER_LIST_SIZE (96 KiB) a server may answer 431 if
    it decodes the block whole. It does, up to 1 MiB: the stream gets 431 ERR_HEADERS_TOO_LARGE with the
    reason, and the connection goes on serving (it was a connection error, ending every upload on it)."""
    client.settle()  # h2 takes at most 64 frames in a header block: at 16 KiB each, 1 MiB would not fit
    stream = client.request("POST", "/files/", [*TUS, ("upload-length", "5"), ("x-padding", "p" * size)])
    answer = client.answer(stream)
    assert answer.status == 431, answer
    assert answer.body.startswith(b"ERR_HEADERS_TOO_LARGE: ") and str(MAX_REQUEST_HEAD_BYTES).encode() in answer.body
    assert options(client) == 204
    assert client.goaway is None


def test_a_header_list_past_what_is_decoded_ends_the_connection_with_goaway(client: H2Raw) -> None:
    """Past H2_HEADER_LIST_DECODED_BYTES (1 MiB) the block is not decoded (a compression bomb inflates without
    bound), and an undecoded block leaves HPACK out of step for every later request on the connection, so
    RFC 9113 4.3 leaves only a connection error: GOAWAY ENHANCE_YOUR_CALM, the connection closed."""
    client.settle()
    client.request(
        "POST", "/files/", [*TUS, ("upload-length", "5"), ("x-padding", "p" * (H2_HEADER_LIST_DECODED_BYTES + KIB))]
    )
    client.until_closed()
    assert client.goaway is not None and client.goaway.error_code == h2.errors.ErrorCodes.ENHANCE_YOUR_CALM


def test_data_after_the_answer_leaves_the_connection_serving(client: H2Raw, tusedge_server: ServerProcess) -> None:
    """The client's END_STREAM arriving after the answer (a race under load: it ended a four-part upload's
    connection in test_http2.py) and a body the app refused before reading it (409 at a wrong offset): the
    data is dropped, the body still coming is stopped with RST_STREAM(NO_ERROR), and the same connection
    serves on; nothing in the log (it was a KeyError traceback and the connection, with all its streams, gone)."""
    created = client.request("POST", "/files/", [*TUS, ("upload-length", "100000")], end_stream=False)
    answer = client.answer(created)
    assert answer.status == 201, answer
    client.send_data(created, b"", end_stream=True)  # the END_STREAM after the answer
    path = urlsplit(answer.headers["location"]).path
    headers = [*TUS, ("content-type", "application/offset+octet-stream"), ("upload-offset", "7"),
               ("content-length", "100000")]  # fmt: skip
    patch = client.request("PATCH", path, headers, end_stream=False)
    client.send_data(patch, b"x" * 16 * KIB)
    refused = client.answer(patch)
    assert refused.status == 409, refused
    client.send_data(patch, b"x" * 16 * KIB)  # more of the body nobody reads
    client.until(lambda: refused.reset is not None, "RST_STREAM of the refused body")
    assert refused.reset == h2.errors.ErrorCodes.NO_ERROR
    assert options(client) == 204
    assert client.goaway is None
    assert "Traceback" not in "".join(tusedge_server.log)


def _stalled_header_block(client: H2Raw, *, continuation: bool) -> None:
    headers = client.h2.encoder.encode([(b":method", b"OPTIONS"), (b":path", b"/files/"), (b":scheme", b"http"),
                                        (b":authority", b"127.0.0.1")])  # fmt: skip
    first = HeadersFrame(client.h2.get_next_available_stream_id(), data=headers[:5])
    first.flags.add("END_STREAM")  # no END_HEADERS: CONTINUATION frames must follow
    client.send_frame(first)
    if continuation:
        client.send_frame(ContinuationFrame(first.stream_id, data=headers[5:6]))


@pytest.mark.parametrize("continuation", [False, True], ids=["headers-without-end", "one-continuation"])
def test_a_header_block_that_never_ends_is_closed_after_the_header_timeout(
    server_factory: ServerFactory, continuation: bool
) -> None:
    """--header-timeout-s holds over HTTP/2 as over HTTP/1.1: a HEADERS frame without END_HEADERS (then nothing,
    or a CONTINUATION that does not end it either) is answered with GOAWAY (NO_ERROR, no stream processed,
    the reason in its debug data) and the connection closed, within the timeout: keep-alive (60 s here)
    does not count while a header block is open."""
    server = server_factory("--header-timeout-s", "1", "--keep-alive-s", "60")
    client = H2Raw(server.port, timeout_s=20)
    client.start()
    assert options(client) == 204
    started = time.monotonic()
    _stalled_header_block(client, continuation=continuation)
    client.until_closed()
    held = time.monotonic() - started
    assert client.goaway is not None and client.goaway.error_code == h2.errors.ErrorCodes.NO_ERROR
    assert client.goaway.last_stream_id == 1  # the OPTIONS; the stalled stream was not processed
    assert (client.goaway.additional_data or b"").startswith(b"ERR_REQUEST_TIMEOUT: ")
    assert 1.0 <= held < 10, held


def test_an_http2_connection_that_sends_no_request_is_closed_after_the_keep_alive(
    server_factory: ServerFactory,
) -> None:
    """Preface and SETTINGS, then nothing: the connection is closed after --keep-alive-s, as over HTTP/1.1."""
    server = server_factory("--keep-alive-s", "1")
    client = H2Raw(server.port, timeout_s=20)
    client.start()
    assert 0.5 <= client.until_closed() < 10


def test_a_tls_connection_that_sends_nothing_is_closed_after_the_keep_alive(
    server_factory: ServerFactory, tmp_path: Path
) -> None:
    """No TLS handshake at all: closed after --keep-alive-s too (it was the TLS handshake timeout, 60 s)."""
    server, _ = https_server(server_factory, tmp_path, "--keep-alive-s", "1")
    with socket.create_connection(("127.0.0.1", server.port), timeout=20) as sock:
        started = time.monotonic()
        assert sock.recv(1) == b""
        assert time.monotonic() - started < 10


def test_http2_over_tls_gets_the_same_431(server_factory: ServerFactory, tmp_path: Path) -> None:
    """The same over TLS with ALPN h2, as browsers speak it, and before the client has the server's SETTINGS."""
    server, certfile = https_server(server_factory, tmp_path)
    context = ssl_context_for(certfile)
    context.set_alpn_protocols(["h2"])
    client = H2Raw(server.port, tls=context)
    client.start()
    stream = client.request("OPTIONS", "/files/", [("x-padding", "p" * 200 * KIB)])
    assert client.answer(stream).status == 431
    assert options(client) == 204


def test_a_header_block_in_more_than_64_frames_ends_the_connection(client: H2Raw) -> None:
    """h2 takes at most 64 frames in one header block (CONTINUATION_BACKLOG): a client still on the 16 KiB frames
    of before our SETTINGS can send at most 1 MiB of header block. More is a connection error (PROTOCOL_ERROR):
    documented in docs/configuration.md beside the 1 MiB of decoded headers."""
    client.request("OPTIONS", "/files/", [("x-padding", "p" * 65 * 16 * KIB)])
    client.until_closed()
    assert client.goaway is not None and client.goaway.error_code == h2.errors.ErrorCodes.PROTOCOL_ERROR
