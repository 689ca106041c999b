"""Requests on a tus server over an httpx client — OPTIONS, POST, HEAD, PATCH — with answers parsed by
tusedge.protocol and unexpected statuses raised as TusClientError."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx

from tusedge.client import boundaries
from tusedge.client.errors import TusClientError
from tusedge.protocol.constants import OFFSET_OCTET_STREAM, TUS_VERSION, Header
from tusedge.protocol.headers import parse_length, parse_offset

TUS = {Header.TUS_RESUMABLE.value: TUS_VERSION}


@dataclass(frozen=True)
class ServerOffer:
    """What OPTIONS says the server supports."""

    extensions: frozenset[str]
    checksum_algorithms: str | None
    digest_algorithms: str | None
    max_size: int | None
    part_alignment: int  # ours: the unit to cut parallel parts on (tusedge.client.boundaries); 1 MiB if not named
    content_encodings: frozenset[str]  # RFC 7694 Accept-Encoding: codings the server decodes in request bodies
    http_version: str  # as the server answered: "HTTP/1.1", "HTTP/2", "HTTP/3"


@dataclass(frozen=True)
class UploadState:
    offset: int | None  # None: a final upload whose parts are still being merged
    length: int | None
    checksum_status: str | None  # ours: pending / verified / mismatch, when a whole-file digest was declared


def _retry_after(response: httpx.Response) -> float | None:
    """A Retry-After in seconds (the date form is not used by tus servers)."""
    value = response.headers.get("Retry-After", "")
    return float(value) if value.isdigit() else None


def _check(response: httpx.Response, method: str, expected: tuple[int, ...]) -> httpx.Headers:
    """The answer's headers, if its status is one of ``expected``; else raise TusClientError."""
    if response.status_code not in expected:
        raise TusClientError(
            method, str(response.url), response.status_code, response.text, retry_after=_retry_after(response)
        )
    return response.headers


async def options(client: httpx.AsyncClient, endpoint: str) -> ServerOffer:
    response = await client.options(endpoint, headers=TUS)
    h = _check(response, "OPTIONS", (200, 204))
    max_size = h.get(Header.TUS_MAX_SIZE)
    return ServerOffer(
        extensions=frozenset(e.strip() for e in h.get(Header.TUS_EXTENSION, "").split(",") if e.strip()),
        checksum_algorithms=h.get(Header.TUS_CHECKSUM_ALGORITHM),
        digest_algorithms=h.get(Header.TUS_UPLOAD_DIGEST_ALGORITHM),
        max_size=int(max_size) if max_size and max_size.isdigit() else None,
        part_alignment=boundaries.parse_alignment(h.get(Header.TUSEDGE_PART_ALIGNMENT)),
        content_encodings=frozenset(
            e.split(";")[0].strip().lower() for e in h.get(Header.ACCEPT_ENCODING, "").split(",") if e.strip()
        ),
        http_version=response.http_version,
    )


async def create(client: httpx.AsyncClient, endpoint: str, headers: dict[str, str], body: bytes | None = None) -> str:
    """POST a new upload; with ``body``, its first bytes too (creation-with-upload)."""
    if body is not None:
        headers = {**headers, "Content-Type": OFFSET_OCTET_STREAM, "Content-Length": str(len(body))}
    response = await client.post(endpoint, headers={**TUS, **headers}, content=body)
    _check(response, "POST", (201,))
    if "Location" not in response.headers:
        raise TusClientError("POST", endpoint, 201, "the answer has no Location header")
    return str(httpx.URL(endpoint).join(response.headers["Location"]))


async def head(client: httpx.AsyncClient, url: str) -> UploadState:
    h = _check(await client.head(url, headers=TUS), "HEAD", (200, 204))
    offset = h.get(Header.UPLOAD_OFFSET)
    return UploadState(
        offset=parse_offset(offset) if offset is not None else None,
        length=parse_length(h.get(Header.UPLOAD_LENGTH)),
        checksum_status=h.get(Header.UPLOAD_CHECKSUM_STATUS),
    )


async def patch(
    client: httpx.AsyncClient,
    url: str,
    offset: int,
    length: int,
    body: AsyncIterator[bytes] | bytes,
    checksum: str | None,
    upload_length: int | None = None,
    encoding: str | None = None,
) -> int:
    """Send ``length`` bytes at ``offset``; return the server's new offset. ``upload_length`` declares a
    deferred upload's length (creation-defer-length), on its last PATCH. With ``encoding`` the body is
    the ``length`` bytes encoded (Content-Encoding; sent chunked, its encoded length unknown ahead)."""
    headers = {
        **TUS,
        Header.UPLOAD_OFFSET.value: str(offset),
        "Content-Type": OFFSET_OCTET_STREAM,
    }
    if encoding is None:
        headers["Content-Length"] = str(length)
    else:
        headers["Content-Encoding"] = encoding
    if checksum is not None:
        headers[Header.UPLOAD_CHECKSUM.value] = checksum
    if upload_length is not None:
        headers[Header.UPLOAD_LENGTH.value] = str(upload_length)
    response = await client.patch(url, content=body, headers=headers)
    _check(response, "PATCH", (204,))
    return parse_offset(response.headers.get(Header.UPLOAD_OFFSET))
