"""Requests are all or nothing: a request answered with an error changes no upload state (its length, metadata,
expiry, or offset beyond the bytes it made durable), and a request that did not arrive whole does nothing.

Each test runs a real server and looks at the upload afterwards with HEAD, GET and the data folder.
"""

from __future__ import annotations

import base64
import hashlib

import httpx
import pytest
from observe import wait_for_metric
from rawhttp import OCTETS, TUS, RawRequest, create_upload, download, head_offset, patch
from server_process import ServerFactory, ServerProcess


def create_deferred(server: ServerProcess) -> str:
    response = httpx.post(server.url, headers={**TUS, "Upload-Defer-Length": "1"})
    assert response.status_code == 201, response.text
    return response.headers["Location"]


def head(url: str) -> httpx.Response:
    response = httpx.head(url, headers=TUS)
    assert response.status_code == 200, response.status_code
    return response


def assert_still_deferred(url: str, offset: int) -> None:
    """HEAD shows the upload as the client left it: at ``offset``, length still deferred (not "finished")."""
    response = head(url)
    assert response.headers["Upload-Offset"] == str(offset)
    assert response.headers.get("Upload-Defer-Length") == "1", dict(response.headers)
    assert "Upload-Length" not in response.headers, dict(response.headers)


def sha1_header(data: bytes) -> str:
    return "sha1 " + base64.b64encode(hashlib.sha1(data).digest()).decode()


def test_patch_refused_413_does_not_set_the_deferred_length(tusedge_server: ServerProcess) -> None:
    """The reported case: PATCH with Upload-Length: 0 and a 3-byte body is 413, and afterwards the upload is still
    deferred at offset 0 (not "offset 0 / length 0", which clients read as finished while GET answers 409)."""
    url = create_deferred(tusedge_server)
    refused = patch(url, 0, b"abc", {"Upload-Length": "0"})
    assert refused.status_code == 413 and refused.text.strip(), refused.text
    assert_still_deferred(url, 0)
    # The upload goes on normally: the right length, then its bytes.
    done = patch(url, 0, b"abc", {"Upload-Length": "3"})
    assert done.status_code == 204 and done.headers["Upload-Offset"] == "3"
    assert download(url) == b"abc"


def test_patch_refused_460_does_not_set_the_deferred_length(tusedge_server: ServerProcess) -> None:
    """checksum: a body whose digest does not match is 460 and the PATCH's Upload-Length is not kept either."""
    url = create_deferred(tusedge_server)
    refused = patch(url, 0, b"abc", {"Upload-Length": "3", "Upload-Checksum": sha1_header(b"xyz")})
    assert refused.status_code == 460, refused.text
    assert_still_deferred(url, 0)
    done = patch(url, 0, b"abc", {"Upload-Length": "3", "Upload-Checksum": sha1_header(b"abc")})
    assert done.status_code == 204
    assert download(url) == b"abc"


def test_chunked_patch_overrunning_its_declared_length_keeps_neither_bytes_nor_length(
    tusedge_server: ServerProcess,
) -> None:
    """A chunked PATCH declaring Upload-Length: 4 whose body turns out longer is 413: no byte of it and not its
    length is kept (the first chunks fitted and were written, but nothing is committed)."""
    url = create_deferred(tusedge_server)
    assert patch(url, 0, b"12").status_code == 204
    headers = {**OCTETS, "Upload-Offset": "2", "Upload-Length": "4", "Transfer-Encoding": "chunked"}
    with RawRequest("PATCH", url, headers) as request:
        request.send_chunk(b"3")
        request.send_chunk(b"45678")
        request.send_chunk(b"")
        response = request.read_response()
    assert response.status == 413 and response.body.strip(), response
    assert_still_deferred(url, 2)


def test_delete_with_a_malformed_chunked_body_terminates_nothing(tusedge_server: ServerProcess) -> None:
    """The reported case: the HTTP layer answers 400 to a DELETE whose chunked framing is broken; the upload must
    not be terminated by a request that never arrived as a valid request."""
    url = create_upload(tusedge_server.url, 10)
    assert patch(url, 0, b"12345").status_code == 204
    with RawRequest("DELETE", url, {**TUS, "Transfer-Encoding": "chunked"}) as request:
        request.send(b"zz\r\nnot a chunk\r\n")
        response = request.read_response()
    assert response.status == 400
    assert head_offset(url) == 5  # still there, not 410
    assert patch(url, 5, b"67890").status_code == 204
    assert download(url) == b"1234567890"


def test_delete_cut_off_before_its_body_ended_terminates_nothing(tusedge_server: ServerProcess) -> None:
    """A DELETE declaring a 100-byte body whose client goes away after 3 bytes did not arrive: nothing happens."""
    url = create_upload(tusedge_server.url, 10)
    with RawRequest("DELETE", url, {**TUS, "Content-Length": "100"}) as request:
        request.send(b"abc")
    # The server notices the cut-off body and ends that request (no body is being written meanwhile).
    wait_for_metric(tusedge_server.origin, "tusedge_requests_total", 1, method="DELETE", status="400")
    assert head_offset(url) == 0


def test_delete_with_a_small_body_still_terminates(tusedge_server: ServerProcess) -> None:
    """A DELETE that carries a small body (some clients send one) is read whole and then acted on."""
    url = create_upload(tusedge_server.url, 10)
    response = httpx.request("DELETE", url, headers=TUS, content=b"{}")
    assert response.status_code == 204
    assert httpx.head(url, headers=TUS).status_code == 410


@pytest.mark.parametrize("failure", ["checksum-460", "chunked-overrun-413"])
def test_creation_with_upload_refused_leaves_no_upload(tusedge_server: ServerProcess, failure: str) -> None:
    """creation-with-upload: a POST answered with an error leaves nothing behind: no upload file, no lock file,
    no state (the client never got a Location, so such an upload could never be resumed or removed)."""
    headers = {**OCTETS, "Upload-Length": "3"}
    if failure == "checksum-460":
        response = httpx.post(tusedge_server.url, headers={**headers, "Upload-Checksum": sha1_header(b"xyz")},
                              content=b"abc")  # fmt: skip
        status, body = response.status_code, response.text
    else:
        with RawRequest("POST", tusedge_server.url, {**headers, "Transfer-Encoding": "chunked"}) as request:
            request.send_chunk(b"ab")
            request.send_chunk(b"cdef")
            request.send_chunk(b"")
            raw = request.read_response()
        status, body = raw.status, raw.body.decode()
    assert status == (460 if failure == "checksum-460" else 413), body
    assert "Location" not in body
    assert list((tusedge_server.data_dir / "uploads").iterdir()) == []
    assert list((tusedge_server.data_dir / "locks").iterdir()) == []


def test_a_request_bound_to_fail_does_not_make_the_lock_holder_give_way(server_factory: ServerFactory) -> None:
    """A PATCH whose body cannot fit (413) is refused before it asks for the upload's lock: the request that holds
    the lock is not interrupted by it, even with --stale-lock-s 0 (a holder gives way at once when asked)."""
    server = server_factory("--stale-lock-s", "0")
    url = create_upload(server.url, 100)
    holder = RawRequest("PATCH", url, {**OCTETS, "Upload-Offset": "0", "Content-Length": "100"})
    with holder:
        holder.send(b"x" * 10)
        wait_for_metric(server.origin, "tusedge_patches_in_progress", 1)  # the holder is writing, lock held
        doomed = patch(url, 0, b"y" * 101)
        assert doomed.status_code == 413, doomed.text
        holder.send(b"x" * 90)
        response = holder.read_response()
    assert response.status == 204, response  # not 423 ERR_UPLOAD_INTERRUPTED
    assert response.headers["upload-offset"] == "100"
    assert download(url) == b"x" * 100
