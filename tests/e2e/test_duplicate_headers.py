"""One value per tus header: a request that sends Tus-Resumable, Upload-Offset, Upload-Length (or another
single-valued tus header) twice is refused with 400 and the reason, and changes nothing; it was accepted
first-wins, so a proxy reading the last line and the server reading the first could disagree on the value.
Upload-Metadata, a comma-separated list, may come in several lines: they are joined (RFC 9110, 5.3)."""

from __future__ import annotations

import httpx
import pytest
from rawhttp import OCTETS, TUS, create_upload, download, head_offset
from server_process import ServerProcess


def post(server: ServerProcess, headers: list[tuple[str, str]]) -> httpx.Response:
    return httpx.post(server.url, headers=headers)


@pytest.mark.parametrize(
    "headers",
    [
        [("Tus-Resumable", "1.0.0"), ("Tus-Resumable", "0.2.2"), ("Upload-Length", "5")],
        [("Tus-Resumable", "1.0.0"), ("Upload-Length", "5"), ("Upload-Length", "7")],
        [("Tus-Resumable", "1.0.0"), ("Upload-Length", "5"), ("Upload-Length", "5")],
        [("Tus-Resumable", "1.0.0"), ("Upload-Defer-Length", "1"), ("Upload-Defer-Length", "1")],
        [("Tus-Resumable", "1.0.0"), ("Upload-Length", "5"), ("Upload-Concat", "partial"), ("Upload-Concat", "x")],
    ],
    ids=["tus-resumable", "upload-length", "upload-length-identical", "upload-defer-length", "upload-concat"],
)
def test_a_creation_with_a_repeated_tus_header_is_400_and_creates_nothing(
    tusedge_server: ServerProcess, headers: list[tuple[str, str]]
) -> None:
    response = post(tusedge_server, headers)
    assert response.status_code == 400, (response.status_code, response.text)
    assert "2 times" in response.text and "\n" not in response.text.strip()
    assert response.headers["Tus-Resumable"] == "1.0.0"
    assert list((tusedge_server.data_dir / "uploads").iterdir()) == []


@pytest.mark.parametrize(
    "extra",
    [
        [("Upload-Offset", "0"), ("Upload-Offset", "3")],
        [("Upload-Offset", "0"), ("Tus-Resumable", "1.0.0")],
        [("Upload-Offset", "0"), ("Content-Type", "application/offset+octet-stream")],
        [("Upload-Offset", "0"), ("X-HTTP-Method-Override", "PATCH"), ("X-HTTP-Method-Override", "DELETE")],
    ],
    ids=["upload-offset", "tus-resumable", "content-type", "method-override"],
)
def test_a_patch_with_a_repeated_tus_header_is_400_and_writes_nothing(
    tusedge_server: ServerProcess, extra: list[tuple[str, str]]
) -> None:
    url = create_upload(tusedge_server.url, 6)
    headers = [*OCTETS.items(), *extra]
    method = "POST" if any(name == "X-HTTP-Method-Override" for name, _ in extra) else "PATCH"
    response = httpx.request(method, url, headers=headers, content=b"abc")
    assert response.status_code == 400, (response.status_code, response.text)
    assert "2 times" in response.text
    assert head_offset(url) == 0


def test_upload_metadata_in_several_lines_is_one_list(tusedge_server: ServerProcess) -> None:
    """Two Upload-Metadata lines are read as one comma-separated list: HEAD shows both pairs."""
    headers = [*TUS.items(), ("Upload-Length", "3"), ("Upload-Metadata", "filename YS50eHQ="),
               ("Upload-Metadata", "kind dGV4dA==")]  # fmt: skip
    response = post(tusedge_server, headers)
    assert response.status_code == 201, response.text
    url = response.headers["Location"]
    head = httpx.head(url, headers=TUS)
    assert head.headers["Upload-Metadata"] == "filename YS50eHQ=,kind dGV4dA=="
    assert httpx.patch(url, headers={**OCTETS, "Upload-Offset": "0"}, content=b"abc").status_code == 204
    assert download(url) == b"abc"


def test_the_same_metadata_key_in_two_lines_is_400(tusedge_server: ServerProcess) -> None:
    headers = [*TUS.items(), ("Upload-Length", "3"), ("Upload-Metadata", "a YQ=="), ("Upload-Metadata", "a Yg==")]
    response = post(tusedge_server, headers)
    assert response.status_code == 400 and "duplicate" in response.text, response.text
