"""Behind a reverse proxy: ``--trust-proxy`` takes scheme and host from X-Forwarded-Proto/-Host."""

from __future__ import annotations

import httpx
from server_process import ServerFactory

FORWARDED = {"Tus-Resumable": "1.0.0", "Upload-Length": "1", "X-Forwarded-Proto": "https"}


def test_location_uses_forwarded_host_and_proto_with_trust_proxy(server_factory: ServerFactory) -> None:
    server = server_factory("--trust-proxy")
    response = httpx.post(server.url, headers={**FORWARDED, "X-Forwarded-Host": "uploads.example.org"})
    assert response.status_code == 201
    assert response.headers["Location"].startswith("https://uploads.example.org/files/")


def test_forwarded_headers_ignored_without_trust_proxy(server_factory: ServerFactory) -> None:
    """Without the flag a client cannot steer the Location header to another host."""
    server = server_factory()
    response = httpx.post(server.url, headers={**FORWARDED, "X-Forwarded-Host": "evil.example"})
    assert response.status_code == 201
    assert response.headers["Location"].startswith(server.url)
