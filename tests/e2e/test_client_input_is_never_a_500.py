"""Bad input gets a clear 4xx with a one-line reason, never a 500 and never a traceback in the log: the cases an
outside hostile-client test found, each against a real server whose log is checked afterwards."""

from __future__ import annotations

import httpx
import pytest
from rawhttp import TUS, RawRequest
from server_process import ServerFactory, ServerProcess

SIGNING_KEY = "k" * 32


def assert_no_traceback(server: ServerProcess) -> None:
    log = "".join(server.log)
    assert "Traceback" not in log, log[-3000:]


@pytest.mark.parametrize("length", [2**44, 2**63 - 1])
def test_a_length_the_file_system_cannot_hold_is_413_not_500(server_factory: ServerFactory, length: int) -> None:
    """With the size limit turned off, preallocating 2^44 or 2^63-1 bytes fails with EFBIG on ext4 (ENOSPC
    elsewhere): that is the client's length, answered 413 (or 507) with a reason, and no file is left behind."""
    server = server_factory("--max-size-bytes", "0")
    response = httpx.post(server.url, headers={**TUS, "Upload-Length": str(length)})
    assert response.status_code in (413, 507), (response.status_code, response.text)
    assert response.text.strip() and "\n" not in response.text.strip()
    assert list((server.data_dir / "uploads").iterdir()) == []
    assert_no_traceback(server)


def test_a_nul_byte_in_a_static_path_is_404(tusedge_server: ServerProcess) -> None:
    response = httpx.get(tusedge_server.origin + "/ui/%00")
    assert response.status_code == 404, response.status_code
    assert httpx.get(tusedge_server.origin + "/ui/upload.js").status_code == 200
    assert_no_traceback(tusedge_server)


@pytest.mark.parametrize("signature", ["%C3%A9", "%FF", "%00", "a" * 64, ""])
def test_a_signature_that_is_not_hex_ascii_is_403(server_factory: ServerFactory, signature: str) -> None:
    """With a signing key, ``signature=%C3%A9`` (non-ASCII: hmac.compare_digest raised TypeError) is a signature
    that does not match, 403 ERR_SIGNATURE_INVALID."""
    server = server_factory(env={"TUSEDGE_SIGNING_KEY": SIGNING_KEY})
    url = f"{server.url}?expires=9999999999&signature={signature}"
    response = httpx.post(url, headers={**TUS, "Upload-Length": "10"})
    assert response.status_code == 403, (response.status_code, response.text)
    assert "signature" in response.text
    assert_no_traceback(server)


@pytest.mark.parametrize("parts", ["final;http://[::1/files/x", "final;http://[zz]/files/x"])
def test_a_final_upload_naming_a_broken_url_is_400(tusedge_server: ServerProcess, parts: str) -> None:
    response = httpx.post(tusedge_server.url, headers={**TUS, "Upload-Concat": parts})
    assert response.status_code == 400, (response.status_code, response.text)
    assert "URL" in response.text
    assert_no_traceback(tusedge_server)


@pytest.mark.parametrize("host", ["[", "[::1", "a b", "x:y", "é"])
def test_an_invalid_host_header_is_400(tusedge_server: ServerProcess, host: str) -> None:
    """RFC 9112, 3.2: an invalid Host is 400 (the server builds Location from it: it raised ValueError)."""
    headers = {**TUS, "Host": host, "Upload-Length": "10", "Content-Length": "0"}
    with RawRequest("POST", tusedge_server.url, headers) as request:
        response = request.read_response()
    assert response.status == 400, response
    assert_no_traceback(tusedge_server)
