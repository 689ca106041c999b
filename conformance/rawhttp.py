"""HTTP/1.1 over a plain socket, for the requests httpx will not send: a body cut off before its declared
``Content-Length``, and a chunked body with a trailer. Plain ``http://`` only."""

from __future__ import annotations

import socket
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from conformance.context import CheckSkipped


@dataclass(frozen=True)
class RawResponse:
    status: int
    headers: dict[str, str]  # lower-cased names; a repeated header keeps its last value


@dataclass(frozen=True)
class Target:
    host: str
    port: int
    host_header: str
    path: str  # request-target: path and query

    @classmethod
    def from_url(cls, url: str) -> Target:
        parts = urlsplit(url)
        if parts.scheme != "http":
            raise CheckSkipped(f"needs a raw {parts.scheme} connection; this check only speaks plain http://")
        if parts.hostname is None:
            raise ValueError(f"no host in {url!r}")
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        return cls(parts.hostname, parts.port or 80, parts.netloc.rpartition("@")[2], path)


def request_head(method: str, target: Target, headers: Mapping[str, str]) -> bytes:
    lines = [f"{method} {target.path} HTTP/1.1", f"Host: {target.host_header}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def chunked(body: bytes, trailers: Mapping[str, str]) -> bytes:
    """``body`` as one chunk, then the last chunk and the trailer section."""
    out = f"{len(body):x}\r\n".encode() + body + b"\r\n" if body else b""
    trailer = "".join(f"{name}: {value}\r\n" for name, value in trailers.items())
    return out + b"0\r\n" + trailer.encode("latin-1") + b"\r\n"


def parse_response_head(data: bytes) -> RawResponse:
    """Status and headers of the response that starts ``data`` (which must hold the whole head)."""
    head, sep, _ = data.partition(b"\r\n\r\n")
    if not sep:
        raise ValueError("incomplete response head")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    version, _, rest = status_line.partition(" ")
    if not version.startswith("HTTP/") or not rest[:3].isdigit():
        raise ValueError(f"bad status line {status_line!r}")
    headers: dict[str, str] = {}
    for line in header_lines:
        name, colon, value = line.partition(":")
        if not colon:
            raise ValueError(f"bad header line {line!r}")
        headers[name.strip().lower()] = value.strip()
    return RawResponse(int(rest[:3]), headers)


def connect(target: Target, timeout_s: float) -> socket.socket:
    return socket.create_connection((target.host, target.port), timeout=timeout_s)


def read_response(sock: socket.socket) -> RawResponse:
    """Read until the end of the response head (the body is not needed) and parse it."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"connection closed after {len(data)} bytes of response")
        data += chunk
    return parse_response_head(data)
