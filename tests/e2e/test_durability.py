"""Offsets are the contract: HEAD reports exactly the bytes that are durably in the upload's file, after a body
cut off mid-way, after ``kill -9`` of the server in the middle of a long PATCH, and right after a 204.

Every test runs a real server process and compares bytes by SHA-256: what the client sent, what is in
``<data_dir>/uploads/<id>`` below the reported offset, and what GET returns once the upload is complete.
"""

from __future__ import annotations

import base64
import hashlib
import os
import time
from collections.abc import Iterator

import httpx
import pytest
from observe import wait_body_bytes_read
from rawhttp import (
    MIB,
    OCTETS,
    TUS,
    BodySender,
    RawRequest,
    create_upload,
    download,
    file_prefix,
    head_offset,
    patch,
    patch_headers,
    poll_offset,
    sha256,
    upload_file,
)
from server_process import ServerFactory, ServerProcess


def assert_file_holds(server: ServerProcess, url: str, data: bytes, offset: int) -> None:
    """The bytes below ``offset`` in the upload's file are exactly the first ``offset`` bytes sent."""
    stored = file_prefix(upload_file(server.data_dir, url), offset)
    assert len(stored) == offset, f"the data file has {len(stored)} bytes below offset {offset}"
    assert sha256(stored) == sha256(data[:offset]), f"the bytes below offset {offset} differ from those sent"


def finish_and_verify(url: str, data: bytes, offset: int) -> None:
    response = patch(url, offset, data[offset:])
    assert response.status_code == 204, (response.status_code, response.text)
    assert response.headers["Upload-Offset"] == str(len(data))
    assert sha256(download(url)) == sha256(data)


@pytest.mark.parametrize("cut", ["close", "half-close"])
def test_patch_cut_off_mid_body_keeps_exactly_the_bytes_sent(tusedge_server: ServerProcess, cut: str) -> None:
    """core.patch-partial-body: "The Server SHOULD always attempt to store as much of the received data as
    possible." A PATCH declaring 5,000,000 bytes is cut off after 3,000,017: HEAD reports exactly that many, the
    file holds them, and the upload completes with a PATCH at that offset."""
    data = os.urandom(5_000_000)
    sent = 3_000_017
    url = create_upload(tusedge_server.url, len(data))
    request = RawRequest("PATCH", url, patch_headers(0, len(data)))
    request.send(data[:sent])
    if cut == "close":
        request.close()
    else:
        request.half_close()
    # While the server commits, HEAD may still say 0 but must never say more than was sent.
    offset = poll_offset(url, sent)
    request.close()
    assert offset == sent
    assert_file_holds(tusedge_server, url, data, sent)
    finish_and_verify(url, data, sent)


def test_patch_reset_mid_body_never_reports_more_than_sent(tusedge_server: ServerProcess) -> None:
    """Offsets are the contract: a connection aborted with a TCP reset may lose bytes still in the kernel's
    buffers, but HEAD never reports more than was sent, and what it reports is in the file."""
    data = os.urandom(4_000_000)
    sent = 2_500_001
    url = create_upload(tusedge_server.url, len(data))
    request = RawRequest("PATCH", url, patch_headers(0, len(data)))
    request.send(data[:sent])
    wait_body_bytes_read(tusedge_server.origin, sent)  # the server has read what was sent before the reset
    request.reset()
    # Without checkpoints (2.5 MB is below the default 8 MiB) the aborted request commits once, when it ends.
    offset = poll_offset(url, 1)
    assert offset <= sent
    assert_file_holds(tusedge_server, url, data, offset)
    finish_and_verify(url, data, offset)


def test_patch_with_checksum_cut_off_commits_nothing(tusedge_server: ServerProcess) -> None:
    """sum.460 / checksum: a chunk whose digest cannot be checked is not kept. A PATCH with Upload-Checksum cut
    off mid-body leaves the offset where it was; the same chunk sent whole is then accepted at that offset."""
    data = os.urandom(2_000_000)
    url = create_upload(tusedge_server.url, len(data))
    assert patch(url, 0, data[:500_000]).status_code == 204
    chunk = data[500_000:]
    digest = base64.b64encode(hashlib.sha1(chunk).digest()).decode()
    headers = {**patch_headers(500_000, len(chunk)), "Upload-Checksum": f"sha1 {digest}"}
    with RawRequest("PATCH", url, headers) as request:
        request.send(chunk[:700_000])
    # The retry needs the upload's lock, so it runs after the cut-off request has finished: a 204 at 500,000
    # proves that request moved nothing (a partial commit would make this a 409).
    response = patch(url, 500_000, chunk, {"Upload-Checksum": f"sha1 {digest}"})
    assert response.status_code == 204, (response.status_code, response.text)
    assert sha256(download(url)) == sha256(data)


@pytest.fixture
def checkpointing_server(server_factory: ServerFactory) -> Iterator[ServerProcess]:
    """Commits every 1 MiB of a long PATCH, in writes of 256 KiB: checkpoints are frequent."""
    yield server_factory(
        "--commit-interval-bytes", "1MiB", "--commit-interval-s", "0", "--write-buffer-bytes", "256KiB"
    )


def test_kill_9_during_long_patch_keeps_committed_offset_and_its_bytes(checkpointing_server: ServerProcess) -> None:
    """Offsets are the contract: a 60 MB upload streamed in one PATCH is killed with SIGKILL three times while the
    body is still flowing: soon after HEAD shows a checkpoint past 5 MB, 17 MB and 30 MB. After each
    restart on the same data folder HEAD reports at least the offset seen before the kill and never more than
    was sent; the bytes below it in the file are exactly those sent; the upload resumes there and completes."""
    server = checkpointing_server
    data = os.urandom(60 * 1_000_000)  # 20 MB past the last kill: margin for a HEAD that lags on a loaded machine
    url = create_upload(server.url, len(data))
    offset = 0
    # The delays put each kill at a different point between two checkpoints (one comes every ~60 ms here at 16 MiB/s).
    for target, delay_s in ((5_000_000, 0.0), (17_000_000, 0.13), (30_000_000, 0.31)):
        request = RawRequest("PATCH", url, patch_headers(offset, len(data) - offset))
        sender = BodySender(request, data[offset:], rate_bytes_per_s=16 * MIB).start()
        # HEAD during the PATCH: the periodic commits are visible while the body is still arriving.
        seen = poll_offset(url, target, timeout_s=60)
        time.sleep(delay_s)
        assert not sender.done, "the body was sent completely before the kill"
        server.kill()
        sender.join()
        request.close()
        sent_at_most = offset + sender.attempted
        assert seen <= sent_at_most
        server.start()
        after = head_offset(url)
        assert seen <= after <= sent_at_most, (seen, after, sent_at_most)
        assert after < len(data)
        assert_file_holds(server, url, data, after)
        offset = after
    finish_and_verify(url, data, offset)


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
def test_kill_9_right_after_204_keeps_the_acknowledged_offset(server_factory: ServerFactory, framing: str) -> None:
    """Offsets are the contract: an offset acknowledged with 204 was synced and committed before the answer, so it
    survives a SIGKILL of the server right after the response, with a sized or a chunked body."""
    server = server_factory()
    data = os.urandom(6_000_000)
    url = create_upload(server.url, len(data))
    acknowledged = 0
    for end in (1_500_000, 4_000_000):
        chunk = data[acknowledged:end]
        content: bytes | Iterator[bytes] = chunk
        if framing == "chunked":
            content = iter([chunk[i : i + 256 * 1024] for i in range(0, len(chunk), 256 * 1024)])
        headers = {**OCTETS, "Upload-Offset": str(acknowledged)}
        response = httpx.patch(url, content=content, headers=headers, timeout=60)
        server.kill()
        assert response.status_code == 204, (response.status_code, response.text)
        acknowledged = int(response.headers["Upload-Offset"])
        assert acknowledged == end
        server.start()
        assert head_offset(url) == acknowledged
        assert_file_holds(server, url, data, acknowledged)
    finish_and_verify(url, data, acknowledged)


def test_patch_beyond_upload_length_is_413_and_leaves_the_offset(tusedge_server: ServerProcess) -> None:
    """core.patch-beyond-length: bytes beyond Upload-Length are never stored; the request is rejected (ours: 413)
    and the offset is unchanged. Both for a Content-Length that is too large (refused before the body is read)
    and for a chunked body that turns out too long while it is read."""
    data = os.urandom(300_000)
    url = create_upload(tusedge_server.url, len(data))
    assert patch(url, 0, data[:100_000]).status_code == 204
    data_file = upload_file(tusedge_server.data_dir, url)

    too_long = patch(url, 100_000, data[100_000:] + b"overflow")
    assert too_long.status_code == 413 and too_long.text.strip()
    assert head_offset(url) == 100_000

    chunked = {**OCTETS, "Upload-Offset": "100000", "Transfer-Encoding": "chunked"}
    with RawRequest("PATCH", url, chunked) as request:
        body = data[100_000:] + os.urandom(100_000)
        for i in range(0, len(body), 64 * 1024):
            request.send_chunk(body[i : i + 64 * 1024])
        request.send_chunk(b"")
        response = request.read_response()
    assert response.status == 413 and response.body.strip(), response
    assert head_offset(url) == 100_000
    # Nothing was written past Upload-Length: the (preallocated) file is exactly as long as the upload.
    assert data_file.stat().st_size == len(data)
    finish_and_verify(url, data, 100_000)


def test_creation_with_upload_cut_off_keeps_the_bytes_sent(tusedge_server: ServerProcess) -> None:
    """cwu.body with core.patch-partial-body: a POST with the first bytes that is cut off mid-body still creates
    the upload and keeps exactly the bytes received; the client never saw Location, so we find the upload in the
    data folder, and it completes with a PATCH from there."""
    data = os.urandom(3_000_000)
    sent = 1_234_567
    headers = {**OCTETS, "Upload-Length": str(len(data)), "Content-Length": str(len(data))}
    with RawRequest("POST", tusedge_server.url, headers) as request:
        request.send(data[:sent])
    uploads = tusedge_server.data_dir / "uploads"
    deadline = time.monotonic() + 10
    while not (files := list(uploads.iterdir())):
        assert time.monotonic() < deadline, "the cut-off POST created no upload"
        time.sleep(0.05)
    assert len(files) == 1
    url = tusedge_server.url + files[0].name
    offset = poll_offset(url, sent)
    assert offset == sent
    assert_file_holds(tusedge_server, url, data, sent)
    response = httpx.head(url, headers=TUS)
    assert response.headers["Upload-Length"] == str(len(data))
    finish_and_verify(url, data, sent)
