"""The QUIC side of the HTTP/3 client (tusedge.client.http3): one request/response per QUIC stream
(:class:`Exchange`), the aioquic protocol that feeds request bodies as flow and congestion control allow
and routes HTTP/3 events to their exchanges (:class:`H3Protocol`), and the response body as an httpx
stream (:class:`ResponseStream`). The transport around it is http3.py.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterable, AsyncIterator
from typing import Any, cast

import httpx
from aioquic.asyncio.protocol import QuicConnectionProtocol, QuicStreamHandler
from aioquic.h3.connection import ErrorCode, H3Connection
from aioquic.h3.events import DataReceived, H3Event, HeadersReceived
from aioquic.quic.connection import QuicConnection
from aioquic.quic.events import ConnectionTerminated, QuicEvent, StopSendingReceived, StreamReset

KIB = 1024
MIB = 1024 * KIB
# Bytes written to a stream but not yet put on the wire. Small: it only has to cover the next few packets
# between two ACKs, and everything above it waits in the caller's iterator instead of in memory.
UNSENT_LIMIT = 256 * KIB
# Largest piece handed to QUIC at once; a big ``content=bytes`` is fed in pieces of this size.
PIECE_BYTES = 64 * KIB
# Request headers that have no place in HTTP/3 (RFC 9114 section 4.2).
CONNECTION_HEADERS = frozenset({b"connection", b"keep-alive", b"proxy-connection", b"transfer-encoding", b"upgrade"})


class Exchange:
    """One request/response on one QUIC stream."""

    def __init__(self, stream_id: int) -> None:
        self.stream_id = stream_id
        self.headers: asyncio.Future[list[tuple[bytes, bytes]]] = asyncio.get_running_loop().create_future()
        self.headers.add_done_callback(retrieve)
        self.body: asyncio.Queue[bytes | Exception | None] = asyncio.Queue()
        self.sender: asyncio.Task[None] | None = None
        self.sending_done = False
        self.receiving_done = False
        self.send_error: Exception | None = None  # set when the peer stopped or reset our stream

    def fail(self, error: Exception) -> None:
        if not self.headers.done():
            self.headers.set_exception(error)
        if not self.receiving_done:
            self.receiving_done = True
            self.body.put_nowait(error)
        if self.send_error is None:
            self.send_error = error


class H3Protocol(QuicConnectionProtocol):
    """One QUIC connection speaking HTTP/3 with many concurrent exchanges."""

    def __init__(self, quic: QuicConnection, stream_handler: QuicStreamHandler | None = None) -> None:
        super().__init__(quic, stream_handler)
        self._http = H3Connection(quic)
        self._exchanges: dict[int, Exchange] = {}
        self._progress = asyncio.Event()
        self.send_buffer_bytes = 4 * MIB
        self.closed_error: Exception | None = None

    @property
    def usable(self) -> bool:
        return self.closed_error is None

    # --- events from aioquic ---------------------------------------------------------------------
    def transmit(self) -> None:
        super().transmit()
        # Called after every datagram received (ACKs, window updates) and every timer: writers re-check.
        self._progress.set()

    def quic_event_received(self, event: QuicEvent) -> None:
        if isinstance(event, ConnectionTerminated):
            reason = event.reason_phrase or f"error {event.error_code:#x}"
            self.closed_error = httpx.RemoteProtocolError(f"connection closed: {reason}")
            for exchange in list(self._exchanges.values()):
                exchange.fail(self.closed_error)
            self._exchanges.clear()
            self._progress.set()
        elif isinstance(event, StreamReset) and event.stream_id in self._exchanges:
            error = httpx.RemoteProtocolError(f"the server reset the stream (error {event.error_code:#x})")
            self._exchanges[event.stream_id].fail(error)
            self._progress.set()
        elif isinstance(event, StopSendingReceived) and event.stream_id in self._exchanges:
            # aioquic has already reset our sending side; the response may still come.
            exchange = self._exchanges[event.stream_id]
            exchange.send_error = httpx.WriteError(f"the server stopped reading (error {event.error_code:#x})")
            self._progress.set()
        for http_event in self._http.handle_event(event):
            self._http_event_received(http_event)

    def _http_event_received(self, event: H3Event) -> None:
        if not isinstance(event, HeadersReceived | DataReceived):
            return
        exchange = self._exchanges.get(event.stream_id)
        if exchange is None or exchange.receiving_done:
            return
        if isinstance(event, HeadersReceived):
            if not exchange.headers.done():
                status = dict(event.headers).get(b":status", b"")
                if status.startswith(b"1"):
                    return  # interim response (RFC 9114 section 4.1)
                exchange.headers.set_result(event.headers)
            # else: trailers, which we do not pass on
        elif event.data:
            exchange.body.put_nowait(event.data)
        if event.stream_ended:
            exchange.receiving_done = True
            exchange.body.put_nowait(None)
            if not exchange.headers.done():
                exchange.headers.set_exception(httpx.RemoteProtocolError("the stream ended before any headers"))
            if not exchange.sending_done:
                # A complete response before the whole body was sent: the server does not want the rest
                # (RFC 9114 section 4.1). Stop sending, keep the response.
                self._stop_sending(exchange, ErrorCode.H3_NO_ERROR)
            self._forget_if_done(exchange)

    # --- requests ----------------------------------------------------------------------------------
    async def send_request(self, request: httpx.Request, timeouts: dict[str, float | None]) -> httpx.Response:
        if self.closed_error is not None:
            raise self.closed_error
        chunks = aiter(cast(AsyncIterable[bytes], request.stream))
        first = await next_chunk(chunks)
        stream_id = self._quic.get_next_available_stream_id()
        exchange = Exchange(stream_id)
        self._exchanges[stream_id] = exchange
        try:
            self._http.send_headers(stream_id, request_headers(request), end_stream=first is None)
            self.transmit()
            if first is None:
                exchange.sending_done = True
            else:
                exchange.sender = asyncio.ensure_future(self._send_body(exchange, first, chunks, timeouts.get("write")))
                exchange.sender.add_done_callback(retrieve)
            headers = await self._wait_for_headers(exchange, timeouts.get("read"))
        except BaseException:
            self.cancel(exchange)
            raise
        status = 0
        response_headers: list[tuple[bytes, bytes]] = []
        for name, value in headers:
            if name == b":status":
                status = int(value)
            elif not name.startswith(b":"):
                response_headers.append((name, value))
        return httpx.Response(
            status,
            headers=response_headers,
            stream=ResponseStream(self, exchange, timeouts.get("read")),
            extensions={"http_version": b"HTTP/3", "stream_id": stream_id},
        )

    async def _wait_for_headers(self, exchange: Exchange, timeout: float | None) -> list[tuple[bytes, bytes]]:
        """Response headers, or the error that ended the body early (which cancels the exchange)."""
        waiting: set[asyncio.Future[Any]] = {exchange.headers}
        if exchange.sender is not None:
            waiting.add(exchange.sender)
        while not exchange.headers.done():
            # The read timeout only runs once the whole body is out: sending may take hours.
            sending = exchange.sender is not None and not exchange.sender.done()
            done, _ = await asyncio.wait(waiting, timeout=None if sending else timeout, return_when="FIRST_COMPLETED")
            if not done:
                raise httpx.ReadTimeout("no HTTP/3 response headers in time")
            if exchange.sender in done:
                if not exchange.sender.cancelled():
                    exchange.sender.result()  # re-raise what went wrong while sending
                waiting.discard(exchange.sender)
        return exchange.headers.result()

    async def _send_body(
        self, exchange: Exchange, first: bytes, chunks: AsyncIterator[bytes], timeout: float | None
    ) -> None:
        stream_id = exchange.stream_id
        chunk: bytes | None = first
        while chunk is not None:
            view = memoryview(chunk)
            for start in range(0, len(view), PIECE_BYTES):
                if not await self._wait_writable(exchange, timeout):
                    return
                self._http.send_data(stream_id, bytes(view[start : start + PIECE_BYTES]), end_stream=False)
                self.transmit()
            chunk = await next_chunk(chunks)
        if not await self._wait_writable(exchange, timeout):
            return
        self._http.send_data(stream_id, b"", end_stream=True)
        exchange.sending_done = True
        self.transmit()
        self._forget_if_done(exchange)

    async def _wait_writable(self, exchange: Exchange, timeout: float | None) -> bool:
        """Wait until the stream has room: less than UNSENT_LIMIT bytes not yet sent (flow control and
        congestion control let it leave) and less than ``send_buffer_bytes`` not yet acknowledged.

        False: the server stopped reading (STOP_SENDING); its response may still come.
        """
        while True:
            if self.closed_error is not None:
                raise self.closed_error
            if exchange.send_error is not None:
                if exchange.receiving_done or exchange.headers.done():
                    raise exchange.send_error  # reset by the server, or the response already failed
                exchange.sending_done = True
                return False
            unsent, unacked = send_backlog(self._quic, exchange.stream_id)
            if unsent < UNSENT_LIMIT and unacked < self.send_buffer_bytes:
                return True
            self._progress.clear()
            try:
                async with asyncio.timeout(timeout):
                    await self._progress.wait()
            except TimeoutError:
                raise httpx.WriteTimeout("HTTP/3 stream made no progress in time") from None

    # --- ending exchanges ---------------------------------------------------------------------------
    def cancel(self, exchange: Exchange) -> None:
        """Abandon an exchange: reset both directions of its stream unless they already ended."""
        if exchange.sender is not None and not exchange.sender.done():
            exchange.sender.cancel()
        if not exchange.sending_done:
            self._stop_sending(exchange, ErrorCode.H3_REQUEST_CANCELLED)
        if not exchange.receiving_done:
            exchange.receiving_done = True
            if self.closed_error is None:
                with contextlib.suppress(ValueError):
                    self._quic.stop_stream(exchange.stream_id, ErrorCode.H3_REQUEST_CANCELLED)
        self._exchanges.pop(exchange.stream_id, None)
        if self.closed_error is None:
            self.transmit()

    def _stop_sending(self, exchange: Exchange, code: ErrorCode) -> None:
        exchange.sending_done = True
        if exchange.sender is not None and not exchange.sender.done():
            exchange.sender.cancel()
        if self.closed_error is None:
            self._quic.reset_stream(exchange.stream_id, code)
            self.transmit()

    def _forget_if_done(self, exchange: Exchange) -> None:
        if exchange.sending_done and exchange.receiving_done:
            self._exchanges.pop(exchange.stream_id, None)


class ResponseStream(httpx.AsyncByteStream):
    def __init__(self, protocol: H3Protocol, exchange: Exchange, timeout: float | None) -> None:
        self._protocol = protocol
        self._exchange = exchange
        self._timeout = timeout
        self._ended = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        while not self._ended:
            try:
                async with asyncio.timeout(self._timeout):
                    item = await self._exchange.body.get()
            except TimeoutError:
                raise httpx.ReadTimeout("HTTP/3 response body stalled") from None
            if item is None:
                self._ended = True
                return
            if isinstance(item, Exception):
                self._ended = True
                raise item
            yield item

    async def aclose(self) -> None:
        exchange = self._exchange
        if not (exchange.receiving_done and exchange.sending_done):
            self._protocol.cancel(exchange)
        self._ended = True


def retrieve(future: asyncio.Future[Any]) -> None:
    """Mark an outcome as seen: failures reach the caller through the exchange, or nobody is waiting."""
    if not future.cancelled():
        future.exception()


async def next_chunk(chunks: AsyncIterator[bytes]) -> bytes | None:
    """The next non-empty chunk, or None at the end."""
    async for chunk in chunks:
        if chunk:
            return bytes(chunk)
    return None


def request_headers(request: httpx.Request) -> list[tuple[bytes, bytes]]:
    url = request.url
    headers = [
        (b":method", request.method.encode("ascii")),
        (b":scheme", b"https"),
        (b":authority", url.netloc),
        (b":path", url.raw_path),
    ]
    for name, value in request.headers.raw:
        name = name.lower()
        if name == b"host" or name in CONNECTION_HEADERS or (name == b"te" and value.lower() != b"trailers"):
            continue
        headers.append((name, value))
    return headers


def send_backlog(quic: QuicConnection, stream_id: int) -> tuple[int, int]:
    """(bytes not yet sent, bytes not yet acknowledged) of a stream's send buffer.

    aioquic (1.x) has no public accessor; these are QuicStreamSender's buffer offsets. A stream that is
    gone has nothing buffered.
    """
    stream = quic._streams.get(stream_id)
    if stream is None:
        return 0, 0
    sender = stream.sender
    return sender._buffer_stop - sender.highest_offset, sender._buffer_stop - sender._buffer_start
