"""Thin endpoints: Request -> parsed protocol request -> TusService -> Response. They parse and format
only: hooks, metrics and the store are the service's."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import replace

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from tusedge import checksum, signing
from tusedge.config import Settings
from tusedge.protocol.constants import SUPPORTED_VERSIONS, Extension, Header
from tusedge.protocol.headers import parse_content_encoding
from tusedge.protocol.requests import check_version, parse_append, parse_create
from tusedge.protocol.upload import ConcatKind
from tusedge.server import decoding
from tusedge.server.body import receive_whole
from tusedge.server.components import Components
from tusedge.server.download import download_response
from tusedge.server.hooks import request_fields
from tusedge.server.limits import ClientLimits
from tusedge.server.responses import checksum_status, tus_response, upload_headers
from tusedge.server.service import TusService
from tusedge.storage.base import Capabilities


def extensions(settings: Settings, capabilities: Capabilities) -> list[Extension]:
    """What this server supports, composed from its settings and its store's capabilities (never a
    hand-kept string). Checksums are computed as bytes arrive, so every store has them."""
    supported = [Extension.CREATION, Extension.CREATION_WITH_UPLOAD]
    if capabilities.defer_length:
        supported.append(Extension.CREATION_DEFER_LENGTH)
    if capabilities.termination:
        supported.append(Extension.TERMINATION)
    supported.append(Extension.CHECKSUM)
    if capabilities.concatenation:
        supported += [Extension.CONCATENATION, Extension.CONCATENATION_UNFINISHED]
    if settings.expiry_s > 0:
        supported.append(Extension.EXPIRATION)
    return supported


class TusEndpoints:
    def __init__(self, components: Components, service: TusService) -> None:
        self.service = service
        self.settings = settings = components.settings
        self.options_headers: dict[str, str] = {
            Header.TUS_VERSION: ",".join(SUPPORTED_VERSIONS),
            Header.TUS_EXTENSION: ",".join(extensions(settings, components.store.capabilities)),
            Header.TUS_CHECKSUM_ALGORITHM: checksum.advertised(),
            # ours: whole-file verification through the ``checksum`` metadata key (docs/checksums.md).
            Header.TUS_UPLOAD_DIGEST_ALGORITHM: checksum.advertised(),
            # RFC 7694: the content codings taken for request bodies (PATCH, creation-with-upload).
            Header.ACCEPT_ENCODING: ", ".join(decoding.SUPPORTED),
        }
        if settings.max_size_bytes:
            self.options_headers[Header.TUS_MAX_SIZE] = str(settings.max_size_bytes)
        if settings.part_alignment_bytes:
            self.options_headers[Header.TUSEDGE_PART_ALIGNMENT] = str(settings.part_alignment_bytes)
        self.capabilities = components.store.capabilities
        self.signing_key = settings.signing_key.encode()
        self.limits = ClientLimits(settings)

    def routes(self) -> list[BaseRoute]:
        """An upload's URL takes DELETE and GET only where the store can terminate and serve content (405
        otherwise, as for any method a resource does not have)."""
        base = self.settings.base_path
        methods = ["OPTIONS", "HEAD", "PATCH"]
        methods += ["DELETE"] if self.capabilities.termination else []
        methods += ["GET"] if self.capabilities.content else []
        return [
            Route(base, self.collection, methods=["OPTIONS", "POST"]),
            Route(base + "{upload_id}", self.resource, methods=methods),
        ]

    def location(self, request: Request, upload_id: str) -> str:
        """An upload's URL: on this node's --public-url when set (node-sticky), else where the request came."""
        origin = self.settings.public_url or str(request.base_url)
        return origin.rstrip("/") + self.settings.base_path + upload_id

    async def collection(self, request: Request) -> Response:
        self.limits.check_rate(request)
        if request.method == "OPTIONS":
            return self.options()
        return await self.create(request)

    async def resource(self, request: Request) -> Response:
        self.limits.check_rate(request)
        upload_id: str = request.path_params["upload_id"]
        method = request.method
        if method == "OPTIONS":
            return self.options()
        if method == "GET":
            return await self.download(upload_id)
        check_version(request.headers)
        if method == "HEAD":
            return await self.head(request, upload_id)
        if method == "PATCH":
            return await self.append(request, upload_id)
        if method == "DELETE":
            return await self.terminate(request, upload_id)
        raise AssertionError(f"{method} is not routed here (the route's methods list says which are)")

    def options(self) -> Response:
        """core: OPTIONS answers 204 with Tus-Version, Tus-Extension, Tus-Max-Size when limited."""
        return tus_response(204, dict(self.options_headers))

    async def create(self, request: Request) -> Response:
        check_version(request.headers)
        max_size = None
        if self.signing_key:
            max_size = signing.verify(self.signing_key, request.url.path, request.query_params, time.time()).max_size
        parsed = parse_create(request.headers)
        asking = request_fields(request.method, request.url.path, request.client.host if request.client else None,
                                request.headers)  # fmt: skip
        body = None
        if parsed.has_body:
            body, length = self.body(request, parsed.content_length)
            parsed = replace(parsed, content_length=length)
        info = await self.service.create(parsed, body, max_size, asking)
        headers = upload_headers(info, offset=parsed.has_body)
        headers.pop(Header.UPLOAD_METADATA, None)
        headers.pop(Header.UPLOAD_LENGTH, None)
        headers.pop(Header.UPLOAD_DEFER_LENGTH, None)
        headers[Header.LOCATION] = self.location(request, info.id)
        return tus_response(201, headers)

    async def head(self, request: Request, upload_id: str) -> Response:
        info = await self.service.get(upload_id)
        # concatenation: "the Server SHOULD NOT include the Upload-Offset header [in the response to a HEAD
        # request for a final upload] unless the concatenation has been successfully finished."
        headers = upload_headers(info, offset=not info.is_final or info.complete)
        if info.concat is ConcatKind.PARTIAL:
            headers[Header.UPLOAD_CONCAT] = "partial"
        elif info.is_final:
            urls = " ".join(self.location(request, part_id) for part_id in info.parts)
            headers[Header.UPLOAD_CONCAT] = f"final;{urls}"
        status = checksum_status(info)
        if status is not None:
            headers[Header.UPLOAD_CHECKSUM_STATUS] = status
        # core: "The Server MUST prevent the client and/or proxies from caching the response by adding
        # the Cache-Control: no-store header to the response."
        headers[Header.CACHE_CONTROL] = "no-store"
        return tus_response(200, headers)

    async def append(self, request: Request, upload_id: str) -> Response:
        parsed = parse_append(request.headers)
        body, length = self.body(request, parsed.content_length)
        info = await self.service.append(upload_id, replace(parsed, content_length=length), body)
        headers: dict[str, str] = {Header.UPLOAD_OFFSET: str(info.offset)}
        if info.expires_at is not None and not info.complete:
            headers[Header.UPLOAD_EXPIRES] = upload_headers(info)[Header.UPLOAD_EXPIRES]
        return tus_response(204, headers)

    def body(self, request: Request, content_length: int | None) -> tuple[AsyncIterator[bytes], int | None]:
        """The request body as upload bytes, and their length where known. A body with a Content-Encoding
        is decoded as it streams (tusedge.server.decoding): its Content-Length counts encoded bytes, so
        the decoded length is not known before the end (the pump still stops it at Upload-Length)."""
        stream = self.limits.throttle(request, request.stream())
        encoding = parse_content_encoding(request.headers.get("content-encoding"), decoding.SUPPORTED)
        if encoding is None:
            return stream, content_length
        return decoding.decoded(stream, self.settings.zstd_max_window_bytes), None

    async def terminate(self, request: Request, upload_id: str) -> Response:
        await receive_whole(request.stream())
        await self.service.terminate(upload_id)
        return tus_response(204)

    async def download(self, upload_id: str) -> Response:
        return download_response(await self.service.download(upload_id))
