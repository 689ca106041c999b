"""A small HTTP/1.1 proxy between a client under test and a real server, for fault tests: it records every
request head, can answer chosen requests itself (e.g. 503) without passing them on, and can damage a
chosen request's body on the way. It runs its own event loop in a thread, so sync tests (and client
processes) can use it; it listens on 127.0.0.1, a free port.

It frames messages by Content-Length only (tus clients send it; our server answers with it), which is all
the tests need."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class SeenRequest:
    method: str
    target: str
    headers: dict[str, str]  # lower-cased names
    at: float = field(default_factory=time.monotonic)
    answered_by_proxy: int | None = None


class DamageFirst:
    """``damage=`` rule for FaultProxy: flip a byte of the first request with ``method``; ``damaged`` lists it."""

    def __init__(self, method: str = "PATCH") -> None:
        self.method = method
        self.damaged: list[SeenRequest] = []

    def __call__(self, request: SeenRequest) -> bool:
        if request.method == self.method and not self.damaged:
            self.damaged.append(request)
            return True
        return False


def _parse_head(raw: bytes) -> tuple[str, dict[str, str]]:
    lines = raw.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            name, value = line.split(":", 1)
            headers[name.strip().lower()] = value.strip()
    return lines[0], headers


class FaultProxy:
    def __init__(
        self,
        upstream_port: int,
        *,
        answer: Callable[[SeenRequest], int | None] | None = None,
        damage: Callable[[SeenRequest], bool] | None = None,
    ) -> None:
        """``answer(request)`` returns a status for the proxy to answer with itself, or None to pass the
        request on; ``damage(request)`` says whether to flip a byte of its body on the way."""
        self.upstream_port = upstream_port
        self.answer = answer
        self.damage = damage
        self.seen: list[SeenRequest] = []
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None

    def __enter__(self) -> FaultProxy:
        self._thread.start()
        self._server = asyncio.run_coroutine_threadsafe(
            asyncio.start_server(self._handle, "127.0.0.1", 0), self._loop
        ).result(10)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    def __exit__(self, *exc: object) -> None:
        async def close() -> None:
            assert self._server is not None
            self._server.close()

        asyncio.run_coroutine_threadsafe(close(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def requests(self, method: str) -> list[SeenRequest]:
        return [r for r in self.seen if r.method == method]

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                request_line, headers = _parse_head(head)
                method, target = request_line.split(" ")[:2]
                request = SeenRequest(method, target, headers)
                self.seen.append(request)
                length = int(headers.get("content-length", "0"))
                status = self.answer(request) if self.answer else None
                if status is not None:
                    request.answered_by_proxy = status
                    await _relay(reader, None, length, damage=False)
                    body = b"injected by the test proxy"
                    fields = f"Tus-Resumable: 1.0.0\r\nContent-Length: {len(body)}\r\n\r\n"
                    writer.write(f"HTTP/1.1 {status} Injected\r\n{fields}".encode() + body)
                    await writer.drain()
                    continue
                if upstream is None:
                    upstream = await asyncio.open_connection("127.0.0.1", self.upstream_port)
                up_reader, up_writer = upstream
                up_writer.write(head)
                await _relay(reader, up_writer, length, damage=bool(self.damage and self.damage(request)))
                response_head = await up_reader.readuntil(b"\r\n\r\n")
                status_line, response_headers = _parse_head(response_head)
                code = int(status_line.split(" ")[1])
                has_body = method != "HEAD" and code not in (204, 304) and code >= 200
                writer.write(response_head)
                await _relay(up_reader, writer, int(response_headers.get("content-length", "0")) if has_body else 0)
                if response_headers.get("connection", "").lower() == "close":
                    return
        except (asyncio.IncompleteReadError, ConnectionError):
            return
        finally:
            writer.close()
            if upstream is not None:
                upstream[1].close()


async def _relay(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter | None, length: int, *, damage: bool = False
) -> None:
    """Copy ``length`` bytes from reader to writer (or drop them when writer is None), flipping the first
    byte when ``damage``."""
    while length > 0:
        chunk = await reader.read(min(256 * 1024, length))
        if not chunk:
            raise ConnectionError("the peer closed mid-body")
        length -= len(chunk)
        if damage:
            chunk, damage = bytes([chunk[0] ^ 0xFF]) + chunk[1:], False
        if writer is not None:
            writer.write(chunk)
            await writer.drain()
