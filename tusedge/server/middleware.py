"""Pure ASGI middleware: X-HTTP-Method-Override, Tus-Resumable on every response, and one value per tus
request header."""

from __future__ import annotations

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tusedge.errors import InvalidHeader
from tusedge.protocol.constants import TUS_VERSION
from tusedge.protocol.headers import check_host, fold_request_headers
from tusedge.server.responses import handle_tus_error

_OVERRIDE = b"x-http-method-override"
_OVERRIDABLE = {"GET", "HEAD", "POST", "PATCH", "DELETE", "OPTIONS"}


class MethodOverride:
    """core: "the X-HTTP-Method-Override request header ... MUST be interpreted by the Server as the
    request's actual method". For environments that only allow GET and POST."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            values = [value for name, value in scope["headers"] if name.lower() == _OVERRIDE]
            # Sent twice, it overrides nothing: RequestHeaderCheck refuses the request with a reason.
            if len(values) == 1:
                method = values[0].decode("latin-1").strip().upper()
                if method in _OVERRIDABLE:
                    scope = {**scope, "method": method}
        await self.app(scope, receive, send)


class RequestHeaderCheck:
    """Refuses a request that sends a single-valued tus header twice or an invalid Host (400 with the reason,
    through the one error table) and joins the lines of a list header, so no handler ever picks "the first"
    of two values."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        try:
            headers = fold_request_headers(scope["headers"])
            for name, value in headers:
                if name == b"host":
                    check_host(value.decode("latin-1"))
        except InvalidHeader as exc:
            response = await handle_tus_error(Request(scope, receive), exc)
            await response(scope, receive, send)
            return
        if len(headers) != len(scope["headers"]):
            scope = {**scope, "headers": headers}
        await self.app(scope, receive, send)


class TusResumableHeader:
    """core: "The Tus-Resumable header MUST be included in every request and response except for
    OPTIONS requests." Added here once, so no handler can forget it (404s of the router included)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_header(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"tus-resumable"]
                headers.append((b"tus-resumable", TUS_VERSION.encode()))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_header)
