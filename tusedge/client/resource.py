"""One tus upload URL on a server: HEAD and PATCH over an httpx client, parsed with tusedge.protocol."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx

from tusedge.protocol.constants import OFFSET_OCTET_STREAM, TUS_VERSION, Header
from tusedge.protocol.headers import parse_length, parse_offset

TUS = {Header.TUS_RESUMABLE.value: TUS_VERSION}


class TusClientError(Exception):
    """The server refused a request; ``status`` and the server's one-line ``reason`` say why."""

    def __init__(self, method: str, url: str, status: int, reason: str) -> None:
        self.status = status
        self.reason = reason.strip().splitlines()[0] if reason.strip() else ""
        super().__init__(f"{method} {url}: {status} {self.reason}".rstrip())


@dataclass(frozen=True)
class UploadState:
    offset: int
    length: int | None


def _check(response: httpx.Response, method: str, expected: tuple[int, ...]) -> None:
    if response.status_code not in expected:
        raise TusClientError(method, str(response.url), response.status_code, response.text)


async def options(client: httpx.AsyncClient, endpoint: str) -> dict[str, str]:
    response = await client.options(endpoint)
    _check(response, "OPTIONS", (200, 204))
    return dict(response.headers)


async def create(client: httpx.AsyncClient, endpoint: str, headers: dict[str, str]) -> str:
    response = await client.post(endpoint, headers={**TUS, **headers})
    _check(response, "POST", (201,))
    return str(httpx.URL(endpoint).join(response.headers["Location"]))


async def head(client: httpx.AsyncClient, url: str) -> UploadState:
    response = await client.head(url, headers=TUS)
    _check(response, "HEAD", (200, 204))
    return UploadState(
        offset=parse_offset(response.headers.get(Header.UPLOAD_OFFSET)),
        length=parse_length(response.headers.get(Header.UPLOAD_LENGTH)),
    )


async def patch(client: httpx.AsyncClient, url: str, offset: int, length: int, body: AsyncIterator[bytes]) -> int:
    """Send ``length`` bytes at ``offset``; return the server's new offset."""
    headers = {
        **TUS,
        Header.UPLOAD_OFFSET.value: str(offset),
        "Content-Type": OFFSET_OCTET_STREAM,
        "Content-Length": str(length),
    }
    response = await client.patch(url, content=body, headers=headers)
    _check(response, "PATCH", (204,))
    return parse_offset(response.headers.get(Header.UPLOAD_OFFSET))
