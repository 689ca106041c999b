"""Pure ASGI middleware: X-HTTP-Method-Override, Tus-Resumable on every response, the request's framing and
head size, and one value per tus request header; and :class:`HttpMiddleware`, the base of those that act on
HTTP requests only."""

from __future__ import annotations

import logging
from collections.abc import Awaitable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tusedge.errors import BodyUnknownThroughFront, ConflictingFraming, InvalidHeader, RequestHeadTooLarge, TusError
from tusedge.protocol.constants import TUS_VERSION
from tusedge.protocol.headers import check_host, fold_request_headers
from tusedge.protocol.metadata import MAX_REQUEST_HEAD_BYTES
from tusedge.server.responses import answer_error

log = logging.getLogger("tusedge")

_OVERRIDE = b"x-http-method-override"
FRONT_PROTOCOL = b"tusedge-front-protocol"
"""Set by the front to the protocol the client spoke (examples/caddy/Caddyfile: ``{http.request.proto}``)."""
_OVERRIDABLE = {"GET", "HEAD", "POST", "PATCH", "DELETE", "OPTIONS"}


class HttpMiddleware:
    """ASGI middleware that acts on HTTP requests only: any other scope (lifespan) goes on to ``app`` as it
    came, an HTTP request to :meth:`http` (no extra coroutine on the way: ``__call__`` hands on the awaitable)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        if scope["type"] != "http":
            return self.app(scope, receive, send)
        return self.http(scope, receive, send)

    async def http(self, scope: Scope, receive: Receive, send: Send) -> None:
        raise NotImplementedError


class MethodOverride:
    """core: "the X-HTTP-Method-Override request header ... MUST be interpreted by the Server as the
    request's actual method". For environments that only allow GET and POST."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            values = [value for name, value in scope["headers"] if name.lower() == _OVERRIDE]
            # Sent twice, it overrides nothing: RequestHeaderCheck refuses the request with a reason.
            # Never for CONNECT: HTTP/1.1 (h11) reads a 2xx to CONNECT as a switch to a tunnel, so an overridden
            # CONNECT answered 204 ended in a protocol error and a traceback (found by tests/e2e/test_fuzz_raw.py).
            if len(values) == 1 and scope.get("method") != "CONNECT":
                method = values[0].decode("latin-1").strip().upper()
                if method in _OVERRIDABLE:
                    scope = {**scope, "method": method}
        await self.app(scope, receive, send)


def head_bytes(scope: Scope) -> int:
    """The size of the request's head as HTTP/1.1 sends it: request line, header lines, the empty line."""
    query = len(scope.get("query_string", b""))
    target = len(scope.get("raw_path") or scope["path"].encode()) + (query + 1 if query else 0)
    line = len(scope["method"]) + 1 + target + len(" HTTP/1.1\r\n")
    return line + sum(len(name) + len(value) + 4 for name, value in scope["headers"]) + 2


class RequestFraming:
    """Refuses, through the one error table, a request whose head is larger than ``MAX_REQUEST_HEAD_BYTES``
    (431; the HTTP/1.1 parser refuses a head that arrives in pieces at the same size, this catches one that
    arrived whole, and HTTP/2 and HTTP/3 heads), and an HTTP/1.x request framed both by Content-Length and
    Transfer-Encoding (400, RFC 9112 6.3). Both close an HTTP/1.x connection."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            error: TusError | None = None
            size = head_bytes(scope)
            if size > MAX_REQUEST_HEAD_BYTES:
                error = RequestHeadTooLarge(
                    f"the request's headers ({size} bytes) are larger than {MAX_REQUEST_HEAD_BYTES} bytes,"
                    " the most this server takes"
                )
            elif str(scope.get("http_version", "")).startswith("1"):
                names = {name.lower() for name, _ in scope["headers"]}
                if b"content-length" in names and b"transfer-encoding" in names:
                    error = ConflictingFraming()
            if error is not None:
                await answer_error(error, scope, receive, send)
                return
        await self.app(scope, receive, send)


class RequestHeaderCheck(HttpMiddleware):
    """Refuses a request that sends a single-valued tus header twice or an invalid Host (400 with the reason,
    through the one error table) and joins the lines of a list header, so no handler ever picks "the first"
    of two values."""

    async def http(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            headers = fold_request_headers(scope["headers"])
            for name, value in headers:
                if name == b"host":
                    check_host(value.decode("latin-1"))
        except InvalidHeader as exc:
            await answer_error(exc, scope, receive, send)
            return
        if len(headers) != len(scope["headers"]):
            scope = {**scope, "headers": headers}
        await self.app(scope, receive, send)


class TusResumableHeader(HttpMiddleware):
    """core: "The Tus-Resumable header MUST be included in every request and response except for
    OPTIONS requests." Added here once, so no handler can forget it (404s of the router included)."""

    async def http(self, scope: Scope, receive: Receive, send: Send) -> None:

        async def send_with_header(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"tus-resumable"]
                headers.append((b"tus-resumable", TUS_VERSION.encode()))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_header)


class FrontBodyCheck:
    """With --trust-proxy: a PATCH, or a POST carrying a body (``application/offset+octet-stream``), that
    the front says came over HTTP/3 (``Tusedge-Front-Protocol: HTTP/3...``) and that arrives with no body
    (``Content-Length: 0``, or no framing at all) is refused with 411 and a warning in the log.

    Caddy 2.6 forwards an HTTP/3 request body sent without Content-Length as empty (it sends
    ``Content-Length: 0``), and answering 204 at an unchanged offset would tell the client its bytes were
    taken. Nothing here can tell that from an HTTP/3 client that really sent an empty body, so both are
    refused: an empty PATCH writes nothing anyway, and the client is told to send Content-Length or to use
    HTTP/2 (docs/http2-http3.md)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] in ("PATCH", "POST"):
            headers = dict(scope["headers"])
            protocol = headers.get(FRONT_PROTOCOL, b"")
            body_expected = scope["method"] == "PATCH" or headers.get(b"content-type", b"").startswith(
                b"application/offset+octet-stream"
            )
            empty = headers.get(b"content-length", b"").strip() in (b"0", b"") and b"transfer-encoding" not in headers
            if protocol.upper().startswith(b"HTTP/3") and body_expected and empty:
                log.warning(
                    "refused %s %s: it reached the front over %s and came on with an empty body (the front may"
                    " have dropped a body sent without Content-Length)",
                    scope["method"], scope.get("path", ""), protocol.decode("latin-1"),
                )  # fmt: skip
                await answer_error(BodyUnknownThroughFront(), scope, receive, send)
                return
        await self.app(scope, receive, send)
