"""GET of a finished upload (ours.get): Range support, a safe Content-Disposition, and no content sniffing.

Starlette's FileResponse answers Range/If-Range and HEAD and uses the ``http.response.pathsend``
extension (zero-copy in the server) when the ASGI server offers it in ``scope["extensions"]``.
Hypercorn 0.18 does not, so there the file passes through Python in 1 MiB reads (docs/downloads.md).

Before Starlette sees it, the Range header is settled here (RFC 9110, 14.2): one satisfiable range is
passed on normalised (206 with its Content-Range; a suffix longer than the upload is all of it); an
unsatisfiable one is answered 416 with ``Content-Range: bytes */N`` (Starlette's lacked the unit); and a
header we do not serve as asked — several ranges, another unit, a malformed or repeated one — is ignored, so
the client gets the whole body (200) rather than Starlette's multipart answer (whose Content-Length did not
match its body) or a 400.
"""

from __future__ import annotations

import os
import re

import anyio.to_thread
from starlette.responses import FileResponse, PlainTextResponse
from starlette.types import Receive, Scope, Send

from tusedge.server.service import Download

_ONE_RANGE = re.compile(r"[ \t]*bytes[ \t]*=[ \t]*([0-9]{0,19})[ \t]*-[ \t]*([0-9]{0,19})[ \t]*", re.IGNORECASE)


def settle_range(value: str | None, size: int) -> str | bool | None:
    """What to do with a Range header for a body of ``size`` bytes: a normalised ``bytes=a-b`` to serve
    (206), False for 416 (not satisfiable), None to ignore it (200 with the whole body)."""
    if value is None:
        return None
    match = _ONE_RANGE.fullmatch(value)
    if match is None:  # several ranges, another unit, or malformed: ignored
        return None
    first, last = match.groups()
    if first:
        start = int(first)
        end = int(last) if last else size - 1
        if last and end < start:
            return None  # an invalid range-spec: the header is ignored
        if start >= size:
            return False
        return f"bytes={start}-{min(end, size - 1)}"
    if not last:
        return None  # "bytes=-"
    suffix = int(last)
    if suffix == 0 or size == 0:
        return False
    return f"bytes={max(0, size - suffix)}-{size - 1}"


class UploadFileResponse(FileResponse):
    chunk_size = 1024 * 1024

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            ranges = [value for name, value in scope["headers"] if name.lower() == b"range"]
            others = [(name, value) for name, value in scope["headers"] if name.lower() != b"range"]
            value = ranges[0].decode("latin-1") if len(ranges) == 1 else None
            size = (await anyio.to_thread.run_sync(os.stat, self.path)).st_size
            settled = settle_range(value, size)
            if_range = any(name.lower() == b"if-range" for name, _ in others)
            if settled is False and not if_range:
                headers = {
                    "Content-Range": f"bytes */{size}",
                    **{k: self.headers[k] for k in _KEPT if k in self.headers},
                }
                reason = f"the range {value!r} is not satisfiable: the upload has {size} bytes\n"
                await PlainTextResponse(reason, status_code=416, headers=headers)(scope, receive, send)
                return
            headers_out = others if not isinstance(settled, str) else [*others, (b"range", settled.encode())]
            scope = {**scope, "headers": headers_out}
        await super().__call__(scope, receive, send)


_KEPT = ("x-content-type-options", "cache-control", "accept-ranges")


def download_response(download: Download) -> FileResponse:
    return UploadFileResponse(
        download.path,
        # The type a client claims is not trusted: served inline, an uploaded page could run script
        # on our origin. Everything is an attachment of octets.
        media_type="application/octet-stream",
        filename=download.filename,
        content_disposition_type="attachment",
        headers={"X-Content-Type-Options": "nosniff", "Cache-Control": "no-store"},
    )
