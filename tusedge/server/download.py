"""GET of a finished upload (ours.get): Range support, a safe Content-Disposition, and no content sniffing.

Starlette's FileResponse answers Range/If-Range and HEAD and uses the ``http.response.pathsend``
extension (zero-copy in the server) when the ASGI server offers it in ``scope["extensions"]``.
Hypercorn 0.18 does not, so there the file passes through Python in 1 MiB reads (docs/downloads.md).
"""

from __future__ import annotations

from starlette.responses import FileResponse

from tusedge.server.service import Download


class UploadFileResponse(FileResponse):
    chunk_size = 1024 * 1024


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
