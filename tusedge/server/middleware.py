"""Pure ASGI middleware: X-HTTP-Method-Override, and Tus-Resumable on every response."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tusedge.protocol.constants import TUS_VERSION

_OVERRIDE = b"x-http-method-override"
_OVERRIDABLE = {"GET", "HEAD", "POST", "PATCH", "DELETE", "OPTIONS"}


class MethodOverride:
    """core: "the X-HTTP-Method-Override request header ... MUST be interpreted by the Server as the
    request's actual method". For environments that only allow GET and POST."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            for name, value in scope["headers"]:
                if name.lower() == _OVERRIDE:
                    method = value.decode("latin-1").strip().upper()
                    if method in _OVERRIDABLE:
                        scope = {**scope, "method": method}
                    break
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
