"""The access log: one structured line per request on standard output, as JSON or logfmt.

Fields, in this order: ``time`` (when the request arrived, UTC), ``client`` (the peer's address; the
forwarded one with --trust-proxy), ``method``, ``path`` (without the query: signed URLs carry their
signature there), ``upload_id`` (from the path, or the Location of a created upload), ``status``,
``bytes_received`` (request body bytes read), ``bytes_sent`` (response body bytes), ``duration_s``,
``http`` (h1, h2 or h3), ``protocol`` (tus when the request carries Tus-Resumable, ietf for the IETF
resumable-upload draft's Upload-Draft-Interop-Version, else empty) and ``user_agent``.

Each line is one ``write(2)`` of less than ``PIPE_BUF`` bytes (long values are cut), so the lines of
several worker processes sharing one stdout never interleave.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

from starlette.middleware import Middleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tusedge.config import Settings
from tusedge.ids import is_upload_id

PROBE_PATHS = frozenset({"/healthz", "/readyz"})
MAX_VALUE_CHARS = 512  # user agents and paths are the client's: bounded so a line stays one atomic write
_HTTP = {"1.0": "h1", "1.1": "h1", "2": "h2", "3": "h3"}

Writer = Callable[[str], None]


def stdout_writer(fd: int = 1) -> Writer:
    def write(line: str) -> None:
        data = line.encode("utf-8", "replace")
        while data:
            data = data[os.write(fd, data) :]

    return write


def _header(headers: Iterable[tuple[bytes, bytes]], *names: bytes) -> dict[bytes, str]:
    found: dict[bytes, str] = {}
    for name, value in headers:
        lowered = name.lower()
        if lowered in names and lowered not in found:
            found[lowered] = value.decode("latin-1")[:MAX_VALUE_CHARS]
    return found


def format_json(fields: dict[str, Any]) -> str:
    return json.dumps(fields, separators=(",", ":"), ensure_ascii=False) + "\n"


def _logfmt_value(value: Any) -> str:
    text = f"{value:.6f}" if isinstance(value, float) else str(value)
    if text and not any(ch in text for ch in ' ="\\') and text.isprintable():
        return text
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    return '"' + "".join(ch if ch.isprintable() else f"\\x{ord(ch):02x}" for ch in escaped) + '"'


def format_logfmt(fields: dict[str, Any]) -> str:
    return " ".join(f"{key}={_logfmt_value(value)}" for key, value in fields.items()) + "\n"


class AccessLog:
    """ASGI middleware writing one line per HTTP request once it is answered (or has failed)."""

    def __init__(self, app: ASGIApp, *, fmt: str, base_path: str, probes: bool = False,
                 write: Writer | None = None) -> None:  # fmt: skip
        if fmt not in ("json", "logfmt"):
            raise ValueError(f"access log format must be json or logfmt, not {fmt!r}")
        self.app = app
        self.format = format_json if fmt == "json" else format_logfmt
        self.base_path = base_path
        self.skip = frozenset() if probes else PROBE_PATHS
        self.write = write or stdout_writer()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self.skip:
            await self.app(scope, receive, send)
            return
        arrived, started = time.time(), time.perf_counter()
        received = sent = 0
        status = 0
        location = ""

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
            return message

        async def counting_send(message: Message) -> None:
            nonlocal sent, status, location
            if message["type"] == "http.response.start":
                status = message["status"]
                if status == 201:
                    location = _header(message.get("headers", []), b"location").get(b"location", "")
            elif message["type"] == "http.response.body":
                sent += len(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, counting_receive, counting_send)
        except BaseException:
            status = status or 500  # Starlette's outermost layer answers it
            raise
        finally:
            self._line(scope, arrived, time.perf_counter() - started, status, received, sent, location)

    def _line(self, scope: Scope, arrived: float, duration: float, status: int, received: int, sent: int,
              location: str) -> None:  # fmt: skip
        path: str = scope["path"]
        headers = _header(scope["headers"], b"user-agent", b"tus-resumable", b"upload-draft-interop-version")
        upload_id = ""
        if path.startswith(self.base_path) and is_upload_id(path[len(self.base_path) :]):
            upload_id = path[len(self.base_path) :]
        elif location:
            tail = location.rsplit("/", 1)[-1].split("?", 1)[0]
            upload_id = tail if is_upload_id(tail) else ""
        protocol = ""
        if b"tus-resumable" in headers:
            protocol = "tus"
        elif b"upload-draft-interop-version" in headers:
            protocol = "ietf"
        client = scope.get("client")
        fields: dict[str, Any] = {
            "time": datetime.fromtimestamp(arrived, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "client": client[0] if client else "",
            "method": scope["method"],
            "path": path[:MAX_VALUE_CHARS],
            "upload_id": upload_id,
            "status": status,
            "bytes_received": received,
            "bytes_sent": sent,
            "duration_s": round(duration, 6),
            "http": _HTTP.get(scope.get("http_version", ""), scope.get("http_version", "")),
            "protocol": protocol,
            "user_agent": headers.get(b"user-agent", ""),
        }
        self.write(self.format(fields))


def access_log_middleware(settings: Settings) -> list[Middleware]:
    """The access log as the app's outermost middleware, or nothing with ``access_log = off``."""
    if settings.access_log == "off":
        return []
    return [Middleware(AccessLog, fmt=settings.access_log, base_path=settings.base_path,
                       probes=settings.access_log_probes)]  # fmt: skip
