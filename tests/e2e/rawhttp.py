"""HTTP/1.1 over a plain socket, for what httpx will not do in the e2e tests: send a body piece by piece at a
chosen pace, stop half-way and keep the connection open, or cut it off (close, half-close, reset). Also the
few tus helpers that the durability, locking and worker tests share (HEAD offset, polling, file contents).
"""

from __future__ import annotations

import hashlib
import socket
import struct
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from urllib.parse import urlsplit

import httpx

KIB = 1024
MIB = 1024 * KIB
TUS = {"Tus-Resumable": "1.0.0"}
OCTETS = {**TUS, "Content-Type": "application/offset+octet-stream"}
TIMEOUT_S = 15.0


@dataclass(frozen=True, slots=True)
class RawResponse:
    status: int
    headers: dict[str, str]  # lower-cased names
    body: bytes


class RawRequest:
    """One request on its own connection (a new one, or ``sock`` when given). The head goes out on construction;
    the body is up to the caller."""

    def __init__(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        timeout_s: float = TIMEOUT_S,
        sock: socket.socket | None = None,
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme != "http" or parts.hostname is None:
            raise ValueError(f"rawhttp speaks plain http:// only, not {url!r}")
        self.sock = sock or socket.create_connection((parts.hostname, parts.port or 80), timeout=timeout_s)
        self.sock.settimeout(timeout_s)
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        lines = [f"{method} {target} HTTP/1.1"]
        if not any(name.lower() == "host" for name in headers):  # a test may send its own (bad) Host
            lines.append(f"Host: {parts.netloc}")
        lines += [f"{name}: {value}" for name, value in headers.items()]
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def send_chunk(self, data: bytes) -> None:
        """One chunk of a ``Transfer-Encoding: chunked`` body; ``b""`` is the last chunk."""
        self.sock.sendall(f"{len(data):x}\r\n".encode() + data + b"\r\n")

    def half_close(self) -> None:
        """Send FIN but keep reading: the server sees the body end early."""
        self.sock.shutdown(socket.SHUT_WR)

    def reset(self) -> None:
        """Abort the connection with a TCP reset instead of a FIN."""
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.sock.close()

    def close(self) -> None:
        self.sock.close()

    def read_response(self, timeout_s: float = TIMEOUT_S, *, has_body: bool = True) -> RawResponse:
        """The response head and its Content-Length body (none for a HEAD request: ``has_body=False``)."""
        self.sock.settimeout(timeout_s)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError(f"connection closed after {len(data)} bytes of response")
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        headers = {}
        for line in header_lines:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        want = int(headers.get("content-length", "0")) if has_body else 0
        while len(body) < want:
            chunk = self.sock.recv(65536)
            if not chunk:
                break
            body += chunk
        return RawResponse(int(status_line.split(" ")[1]), headers, body)

    def __enter__(self) -> RawRequest:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.sock.close()


class BodySender:
    """Sends ``body`` on a request from a thread at about ``rate_bytes_per_s``, until the body is done, the caller
    stops it, or the connection breaks (server killed, or an early answer). ``sent`` counts the bytes the kernel
    took; ``attempted`` also counts the send in progress, so the server can never have received more than that."""

    def __init__(self, request: RawRequest, body: bytes, rate_bytes_per_s: float, chunk_bytes: int = 64 * KIB) -> None:
        self.request = request
        self.body = body
        self.rate_bytes_per_s = rate_bytes_per_s
        self.chunk_bytes = chunk_bytes
        self.sent = 0
        self.attempted = 0
        self.error: OSError | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> BodySender:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self.join()

    def join(self, timeout_s: float = TIMEOUT_S) -> None:
        self._thread.join(timeout_s)
        assert not self._thread.is_alive(), "the body sender is stuck"

    @property
    def done(self) -> bool:
        return not self._thread.is_alive()

    def _run(self) -> None:
        started = time.monotonic()
        while self.sent < len(self.body) and not self._stop.is_set():
            chunk = self.body[self.sent : self.sent + self.chunk_bytes]
            self.attempted = self.sent + len(chunk)
            try:
                self.request.send(chunk)
            except OSError as exc:
                self.error = exc
                return
            self.sent += len(chunk)
            pause = started + self.sent / self.rate_bytes_per_s - time.monotonic()
            if pause > 0:
                self._stop.wait(pause)


# --- tus helpers ---------------------------------------------------------------------------------------------
def create_upload(creation_url: str, length: int, metadata: str | None = None) -> str:
    headers = {**TUS, "Upload-Length": str(length)}
    if metadata:
        headers["Upload-Metadata"] = metadata
    response = httpx.post(creation_url, headers=headers, timeout=TIMEOUT_S)
    assert response.status_code == 201, (response.status_code, response.text)
    return response.headers["Location"]


def patch(url: str, offset: int, body: bytes, extra: Mapping[str, str] | None = None) -> httpx.Response:
    headers = {**OCTETS, "Upload-Offset": str(offset), **(extra or {})}
    return httpx.patch(url, content=body, headers=headers, timeout=60.0)


def patch_headers(offset: int, content_length: int) -> dict[str, str]:
    return {**OCTETS, "Upload-Offset": str(offset), "Content-Length": str(content_length)}


def head_offset(url: str) -> int:
    response = httpx.head(url, headers=TUS, timeout=TIMEOUT_S)
    assert response.status_code == 200, response.status_code
    return int(response.headers["Upload-Offset"])


def poll_offset(url: str, at_least: int, timeout_s: float = 10.0, interval_s: float = 0.02) -> int:
    """HEAD until the offset is ``at_least``; return it (it may be more). Fails after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        offset = head_offset(url)
        if offset >= at_least:
            return offset
        assert time.monotonic() < deadline, f"after {timeout_s} s HEAD still reports Upload-Offset {offset}"
        time.sleep(interval_s)


def download(url: str) -> bytes:
    response = httpx.get(url, timeout=60.0)
    assert response.status_code == 200, (response.status_code, response.text)
    return response.content


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def upload_file(data_dir: Path, url: str) -> Path:
    """The data file of the upload at ``url`` (``<data_dir>/uploads/<id>``)."""
    return data_dir / "uploads" / url.rstrip("/").rsplit("/", 1)[1]


def file_prefix(path: Path, count: int) -> bytes:
    with path.open("rb") as fh:
        return fh.read(count)
