"""Core behaviour beyond the conformance suite's view: what happens on disk, and edge cases."""

from __future__ import annotations

import base64
import time

import httpx
from rawhttp import RawRequest
from server_process import ServerFactory, ServerProcess

TUS = {"Tus-Resumable": "1.0.0"}
OCTETS = {**TUS, "Content-Type": "application/offset+octet-stream"}


def create(server: ServerProcess, length: int) -> str:
    response = httpx.post(server.url, headers={**TUS, "Upload-Length": str(length)})
    assert response.status_code == 201
    return response.headers["Location"]


def test_patch_to_completed_upload_empty_is_204_and_more_is_413(tusedge_server: ServerProcess) -> None:
    """A finished upload takes an empty PATCH at its offset (204, offset unchanged) and refuses bytes."""
    url = create(tusedge_server, 3)
    assert httpx.patch(url, content=b"abc", headers={**OCTETS, "Upload-Offset": "0"}).status_code == 204
    empty = httpx.patch(url, content=b"", headers={**OCTETS, "Upload-Offset": "3"})
    assert empty.status_code == 204 and empty.headers["Upload-Offset"] == "3"
    more = httpx.patch(url, content=b"d", headers={**OCTETS, "Upload-Offset": "3"})
    assert more.status_code == 413 and more.text.strip()
    assert httpx.get(url).content == b"abc"


def test_expired_upload_is_410_and_its_file_is_removed(server_factory: ServerFactory) -> None:
    """exp.gone: after expiry the upload answers 410 and the reaper reclaims its storage."""
    server = server_factory("--expiry-s", "1", "--reaper-interval-s", "0.2")
    url = create(server, 10)
    assert httpx.patch(url, content=b"12345", headers={**OCTETS, "Upload-Offset": "0"}).status_code == 204
    data_file = server.data_dir / "uploads" / url.rsplit("/", 1)[1]
    assert data_file.exists()
    deadline = time.monotonic() + 10
    while data_file.exists():
        assert time.monotonic() < deadline, "the reaper did not remove the expired upload's file"
        time.sleep(0.1)
    assert httpx.head(url, headers=TUS).status_code == 410
    assert httpx.patch(url, content=b"6", headers={**OCTETS, "Upload-Offset": "5"}).status_code == 410


def test_finished_upload_does_not_expire(server_factory: ServerFactory) -> None:
    server = server_factory("--expiry-s", "1", "--reaper-interval-s", "0.2")
    url = create(server, 2)
    response = httpx.patch(url, content=b"ok", headers={**OCTETS, "Upload-Offset": "0"})
    assert "Upload-Expires" not in response.headers
    time.sleep(1.6)
    assert httpx.get(url).content == b"ok"


def test_terminated_upload_file_removed_and_410(tusedge_server: ServerProcess) -> None:
    """term.204 / term.after: DELETE frees the file; later requests get 410."""
    url = create(tusedge_server, 4)
    httpx.patch(url, content=b"ab", headers={**OCTETS, "Upload-Offset": "0"})
    assert httpx.delete(url, headers=TUS).status_code == 204
    assert not (tusedge_server.data_dir / "uploads" / url.rsplit("/", 1)[1]).exists()
    assert httpx.head(url, headers=TUS).status_code == 410
    assert httpx.delete(url, headers=TUS).status_code == 410


def test_malformed_upload_ids_are_404_not_500(tusedge_server: ServerProcess) -> None:
    """ours.errors: ids that cannot exist (wrong length, path tricks) are plain 404s."""
    for bad in ("x", "0" * 31, "../tusedge.db", "%2e%2e%2ftusedge.db", "A" * 32):
        response = httpx.head(tusedge_server.url + bad, headers=TUS)
        assert response.status_code == 404, (bad, response.status_code)


def test_unfinished_upload_is_not_served(tusedge_server: ServerProcess) -> None:
    """ours.get: GET of an unfinished upload is 409 with a reason, never a partial file as if complete."""
    url = create(tusedge_server, 10)
    httpx.patch(url, content=b"12345", headers={**OCTETS, "Upload-Offset": "0"})
    response = httpx.get(url)
    assert response.status_code == 409 and "not finished" in response.text


def test_download_content_disposition_is_sanitised(tusedge_server: ServerProcess) -> None:
    """ours.get: the client's filename is reduced to a safe last path component."""
    name = base64.b64encode(b'../../etc/pa"ss\nwd.txt').decode()
    response = httpx.post(
        tusedge_server.url, headers={**TUS, "Upload-Length": "1", "Upload-Metadata": f"filename {name}"}
    )
    url = response.headers["Location"]
    httpx.patch(url, content=b"x", headers={**OCTETS, "Upload-Offset": "0"})
    got = httpx.get(url)
    disposition = got.headers["Content-Disposition"]
    assert disposition.startswith("attachment;")
    assert "/" not in disposition and "\n" not in disposition and 'pa"ss' not in disposition
    assert got.headers["Content-Type"] == "application/octet-stream"
    assert got.headers["X-Content-Type-Options"] == "nosniff"


def test_idle_connections_are_closed_after_keep_alive_s_and_kept_before(server_factory: ServerFactory) -> None:
    """ours: --keep-alive-s: a client that pauses between requests for less keeps its connection (Hypercorn's
    own default would drop it after 5 s); one idle for longer is closed by the server."""
    server = server_factory("--keep-alive-s", "2")
    with RawRequest("OPTIONS", server.url, {"Tus-Resumable": "1.0.0"}) as conn:
        assert conn.read_response(has_body=True).status == 204
        time.sleep(1.0)
        again = RawRequest("OPTIONS", server.url, {"Tus-Resumable": "1.0.0"}, sock=conn.sock)
        assert again.read_response().status == 204  # the same connection, still open
        time.sleep(3.0)
        conn.sock.settimeout(5)
        assert conn.sock.recv(1) == b""  # closed by the server


def test_a_server_on_its_defaults_has_a_finite_max_size(tusedge_server: ServerProcess) -> None:
    """Safe defaults: without --max-size-bytes the server advertises Tus-Max-Size 64 GiB and refuses a larger
    Upload-Length with 413 (it used to accept any length and try to preallocate it)."""
    options = httpx.options(tusedge_server.url)
    assert options.headers["Tus-Max-Size"] == str(64 * 1024**3)
    for length in (64 * 1024**3 + 1, 2**44):
        response = httpx.post(tusedge_server.url, headers={**TUS, "Upload-Length": str(length)})
        assert response.status_code == 413 and "maximum" in response.text, response.text
