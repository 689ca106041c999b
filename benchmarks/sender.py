"""A tus client for benchmarks that is not the bottleneck: bodies go from the file to the socket with
``socket.sendfile`` (``os.sendfile``) (no copy through Python), one plain HTTP/1.1 request per PATCH."""

from __future__ import annotations

import http.client
import socket
from urllib.parse import urljoin, urlsplit

import httpx

TUS = {"Tus-Resumable": "1.0.0"}


def create(endpoint: str, length: int, concat: str | None = None) -> str:
    headers = {**TUS, "Upload-Length": str(length)}
    if concat:
        headers["Upload-Concat"] = concat
    response = httpx.post(endpoint, headers=headers, timeout=60)
    assert response.status_code == 201, f"POST {endpoint}: {response.status_code} {response.text}"
    return urljoin(endpoint, response.headers["Location"])


def patch_from_file(url: str, path: str, file_offset: int, length: int, upload_offset: int) -> None:
    """PATCH ``length`` bytes of ``path`` (from ``file_offset``) at ``upload_offset``, via sendfile."""
    patch_chunks(url, path, [(file_offset, length)], length, upload_offset)


def patch_chunks(url: str, path: str, chunks: list[tuple[int, int]], length: int, upload_offset: int = 0) -> None:
    """One PATCH whose body is the given (offset, count) ranges of ``path`` one after another."""
    parts = urlsplit(url)
    with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 80), timeout=600) as sock:
        head = (
            f"PATCH {parts.path} HTTP/1.1\r\nHost: {parts.netloc}\r\nTus-Resumable: 1.0.0\r\n"
            f"Upload-Offset: {upload_offset}\r\nContent-Type: application/offset+octet-stream\r\n"
            f"Content-Length: {length}\r\nConnection: close\r\n\r\n"
        )
        sock.sendall(head.encode())
        with open(path, "rb") as fh:
            for file_offset, count in chunks:
                sent = sock.sendfile(fh, file_offset, count)  # os.sendfile underneath, timeouts handled
                if sent != count:
                    raise OSError(f"sent {sent} of {count} bytes")
        response = http.client.HTTPResponse(sock)
        response.begin()
        assert response.status == 204, f"PATCH {url}: {response.status} {response.read()[:200]!r}"


def upload_file(endpoint: str, path: str, size: int, patch_bytes: int, concat: str | None = None) -> str:
    """Create an upload and send ``size`` bytes of ``path`` in PATCHes of ``patch_bytes``."""
    url = create(endpoint, size, concat)
    offset = 0
    while offset < size:
        n = min(patch_bytes, size - offset)
        patch_from_file(url, path, offset, n, offset)
        offset += n
    return url


def upload_part(endpoint: str, path: str, file_offset: int, length: int, patch_bytes: int) -> str:
    url = create(endpoint, length, "partial")
    done = 0
    while done < length:
        n = min(patch_bytes, length - done)
        patch_from_file(url, path, file_offset + done, n, done)
        done += n
    return url
