"""The one place where errors and upload records become HTTP responses."""

from __future__ import annotations

import logging

import anyio
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from tusedge.errors import TusError
from tusedge.protocol.constants import TUS_VERSION, Header
from tusedge.protocol.headers import declared_digest, format_expires
from tusedge.protocol.upload import Failure, Status, UploadInfo
from tusedge.state.errors import state_error

log = logging.getLogger("tusedge")


def tus_response(status: int, headers: dict[str, str] | None = None, body: str = "") -> Response:
    return Response(body, status_code=status, headers=headers, media_type="text/plain" if body else None)


def upload_headers(info: UploadInfo, *, offset: bool = True) -> dict[str, str]:
    """Headers describing an upload: offset, length (or deferred), metadata, expiry, concat."""
    headers: dict[str, str] = {}
    if offset:
        headers[Header.UPLOAD_OFFSET] = str(info.offset)
    if info.length is not None:
        headers[Header.UPLOAD_LENGTH] = str(info.length)
    elif info.deferred:
        headers[Header.UPLOAD_DEFER_LENGTH] = "1"
    if info.metadata:
        headers[Header.UPLOAD_METADATA] = info.metadata
    if info.expires_at is not None and not info.complete:
        headers[Header.UPLOAD_EXPIRES] = format_expires(info.expires_at)
    return headers


def checksum_status(info: UploadInfo) -> str | None:
    """``Upload-Checksum-Status`` of an upload that declared a whole-file digest: pending, verified,
    mismatch, or failed for another reason (ours; docs/checksums.md)."""
    if declared_digest(info.metadata) is None:
        return None
    if info.status is Status.COMPLETE:
        return "verified"
    if info.status is Status.FAILED:
        return "mismatch" if info.failure is Failure.DIGEST_MISMATCH else "failed"
    return "pending"


# An error answered before the body was read (409, 412, 413 on Content-Length, ...) would be lost if we
# closed with unread bytes in the socket: the kernel answers them with a reset, which can destroy our
# response before the client reads it. We read and drop up to this much first (bounded in size and time);
# a larger body is cut off and its client sees a dropped connection, which tus clients retry with HEAD.
DRAIN_LIMIT_BYTES = 4 * 1024 * 1024
DRAIN_TIMEOUT_S = 2.0


async def drain_body(request: Request) -> None:
    if request.method not in ("PATCH", "POST"):
        return
    drained = 0
    with anyio.move_on_after(DRAIN_TIMEOUT_S):
        try:
            async for chunk in request.stream():
                drained += len(chunk)
                if drained > DRAIN_LIMIT_BYTES:
                    break
        except (RuntimeError, ClientDisconnect):  # RuntimeError: the body was already (partly) read
            pass


def closes_connection(exc: TusError, request: Request) -> bool:
    """HTTP/1.x connections are closed after an error that says so; HTTP/2 and HTTP/3 have no
    ``Connection`` header (and multiplex other requests on theirs)."""
    return exc.close_connection and str(request.scope.get("http_version", "1.1")).startswith("1")


def error_text(exc: TusError) -> str:
    """An error's body, as tusd writes it: its stable code, then its one-line reason
    (``ERR_MISMATCHED_OFFSET: Upload-Offset does not match ...``), so a client can tell conditions apart
    that share a status without parsing prose."""
    return f"{exc.code}: {exc.message}\n"


async def handle_tus_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, TusError)
    if exc.status >= 500:
        # The server's own trouble (storage, a hook, capacity): the operator hears of it, in one line.
        log.error("%s %s answered %d %s: %s", request.method, request.url.path, exc.status, exc.code, exc.message)
    headers = {**exc.headers, "Tus-Resumable": TUS_VERSION}
    if closes_connection(exc, request):
        # The server drains what the client still sends while the connection closes (the lingering
        # close, hypercorn_fixes.tcp), so the answer is not lost to a reset.
        headers["Connection"] = "close"
    else:
        await drain_body(request)
    if request.method == "HEAD":
        return Response(status_code=exc.status, headers=headers)
    return Response(error_text(exc), status_code=exc.status, headers=headers, media_type="text/plain")


async def answer_error(error: TusError, scope: Scope, receive: Receive, send: Send) -> None:
    """Answer ``error`` from an ASGI middleware, before the request reaches the app (as :func:`handle_tus_error`
    answers it inside the app)."""
    response = await handle_tus_error(Request(scope, receive), error)
    await response(scope, receive, send)


def raw_error(exc: TusError) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    """Status, headers and body of an error the HTTP layer answers itself, before any request reached the
    app (hypercorn_fixes.h11): the same text as :func:`handle_tus_error`'s, and the connection closes."""
    body = error_text(exc).encode()
    headers = [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in exc.headers.items()]
    headers += [
        (b"content-type", b"text/plain; charset=utf-8"),
        (b"content-length", str(len(body)).encode()),
        (b"tus-resumable", TUS_VERSION.encode()),
        (b"connection", b"close"),
    ]
    return exc.status, headers, body


def _leaf(exc: BaseException) -> BaseException:
    """The one exception inside (nested) exception groups of one member, as task groups raise them."""
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc


def translated(exc: BaseException) -> TusError | None:
    """A typed error for ``exc``: itself, the one inside a task group's exception group, or the translation
    of a state database failure (tusedge.state.errors); None for a bug."""
    leaf = _leaf(exc)
    return leaf if isinstance(leaf, TusError) else state_error(leaf)


async def handle_translated(request: Request, exc: Exception) -> Response:
    """For SQLAlchemy's errors and exception groups: answered like a TusError when they translate into one
    (no traceback: a full disk is the operator's news, logged in one line); a bug is raised on to the 500."""
    error = translated(exc)
    if error is None:
        raise exc
    return await handle_tus_error(request, error)


async def handle_unexpected(request: Request, exc: Exception) -> Response:
    log.exception("unexpected error in %s %s", request.method, request.url.path, exc_info=exc)
    body = "" if request.method == "HEAD" else "internal server error\n"
    return Response(body, status_code=500, headers={"Tus-Resumable": TUS_VERSION}, media_type="text/plain")
