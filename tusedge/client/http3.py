"""HTTP/3 for httpx: :class:`H3Transport`, an ``httpx.AsyncBaseTransport`` on aioquic.

``httpx.AsyncClient(transport=H3Transport(verify="cert.pem"))`` sends every request over QUIC, so code written
against httpx (the tus client) does not care which transport it runs on. One QUIC connection per origin is
opened on first use and reused by later and concurrent requests (each request is one QUIC stream).

Request bodies stream: chunks from ``content=`` (bytes or an async iterator) are handed to QUIC only while
the stream has less than ``send_buffer_bytes`` unacknowledged and little unsent data, so a 20 GB body never
sits in memory and data leaves as fast as flow control and congestion control let it. A body that fails or a
request that is cancelled mid-body resets its stream (``H3_REQUEST_CANCELLED``); the server sees the request
end there and the connection stays usable. A stream the server resets raises :class:`httpx.RemoteProtocolError`.

Response bodies stream too, but aioquic always extends receive credit as data arrives, so a response that
is not read is buffered; tus responses are small, and a download should be read as it comes.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from typing import cast

import httpx
from aioquic.asyncio.client import connect
from aioquic.h3.connection import H3_ALPN
from aioquic.quic.configuration import QuicConfiguration

from tusedge.client.h3stream import (
    MIB,
    PIECE_BYTES,
    UNSENT_LIMIT,
    H3Protocol,
)

__all__ = ["PIECE_BYTES", "UNSENT_LIMIT", "H3Transport"]


class _Connection:
    """A QUIC connection held open across requests (the ``connect()`` context stays entered)."""

    def __init__(self, stack: contextlib.AsyncExitStack, protocol: H3Protocol) -> None:
        self.stack = stack
        self.protocol = protocol


class H3Transport(httpx.AsyncBaseTransport):
    """httpx transport speaking HTTP/3 over QUIC (aioquic), one reused connection per origin.

    :param verify: ``True`` checks the server certificate against the system CAs (certifi), a path
        checks it against that PEM file (e.g. one written by ``tusedge cert``), ``False`` skips checks.
    :param max_data: connection-wide receive window (QUIC ``initial_max_data``), in bytes.
    :param max_stream_data: per-stream receive window (``initial_max_stream_data``), in bytes.
    :param idle_timeout: a connection with no traffic for this many seconds is closed (and reopened on
        the next request).
    :param send_buffer_bytes: per-stream limit of request body bytes held until the server acknowledges
        them; bounds memory and caps throughput at about ``send_buffer_bytes / RTT``.
    :param max_datagram_size: QUIC packet size to send. 1200 goes through any network; larger values
        (up to the path MTU minus 48) need fewer packets per byte.
    """

    def __init__(
        self,
        *,
        verify: bool | str = True,
        max_data: int = 16 * MIB,
        max_stream_data: int = 8 * MIB,
        idle_timeout: float = 30.0,
        send_buffer_bytes: int = 4 * MIB,
        max_datagram_size: int = 1200,
    ) -> None:
        if send_buffer_bytes < UNSENT_LIMIT:
            raise ValueError(f"send_buffer_bytes must be at least {UNSENT_LIMIT}")
        self._verify = verify
        self._max_data = max_data
        self._max_stream_data = max_stream_data
        self._idle_timeout = idle_timeout
        self._send_buffer_bytes = send_buffer_bytes
        self._max_datagram_size = max_datagram_size
        self._connections: dict[tuple[str, int], _Connection] = {}
        self._locks: dict[tuple[str, int], asyncio.Lock] = {}
        self._closed = False

    def _configuration(self) -> QuicConfiguration:
        configuration = QuicConfiguration(
            is_client=True,
            alpn_protocols=H3_ALPN,
            idle_timeout=self._idle_timeout,
            max_data=self._max_data,
            max_stream_data=self._max_stream_data,
            max_datagram_size=self._max_datagram_size,
        )
        if self._verify is False:
            configuration.verify_mode = ssl.CERT_NONE
        elif isinstance(self._verify, str):
            configuration.load_verify_locations(cafile=self._verify)
        return configuration

    async def _connection(self, host: str, port: int, timeout: float | None) -> H3Protocol:
        key = (host, port)
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            current = self._connections.get(key)
            if current is not None:
                if current.protocol.usable:
                    return current.protocol
                del self._connections[key]
                await _close_quietly(current)
            if self._closed:
                raise httpx.ConnectError("the transport is closed")
            stack = contextlib.AsyncExitStack()
            timed_out = False
            protocol: H3Protocol | None = None
            try:
                protocol = cast(
                    H3Protocol,
                    await stack.enter_async_context(
                        connect(
                            host,
                            port,
                            configuration=self._configuration(),
                            create_protocol=H3Protocol,
                            wait_connected=False,
                        )
                    ),
                )

                # A handshake that takes too long is closed, which fails the wait below. Cancelling the
                # wait instead would leave aioquic's shielded waiter to fail later, unobserved.
                def give_up() -> None:
                    nonlocal timed_out
                    timed_out = True
                    if protocol is not None:
                        protocol.close()

                timer = None if timeout is None else asyncio.get_running_loop().call_later(timeout, give_up)
                protocol.transmit()  # the ClientHello: connect() leaves it to us with wait_connected=False
                try:
                    await protocol.wait_connected()
                finally:
                    if timer is not None:
                        timer.cancel()
            except (ConnectionError, OSError) as exc:
                await stack.aclose()
                if timed_out:
                    raise httpx.ConnectTimeout(f"no QUIC handshake with {host}:{port} in time") from None
                reason = protocol.closed_error if protocol is not None and protocol.closed_error else exc
                raise httpx.ConnectError(f"QUIC connection to {host}:{port} failed: {reason}") from exc
            protocol.send_buffer_bytes = self._send_buffer_bytes
            self._connections[key] = _Connection(stack, protocol)
            return protocol

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        if url.scheme != "https":
            raise httpx.UnsupportedProtocol("HTTP/3 needs an https:// URL")
        timeouts = cast(dict[str, float | None], request.extensions.get("timeout", {}))
        protocol = await self._connection(url.host, url.port or 443, timeouts.get("connect"))
        return await protocol.send_request(request, timeouts)

    async def aclose(self) -> None:
        """Close every connection (CONNECTION_CLOSE); requests still running fail."""
        self._closed = True
        connections, self._connections = list(self._connections.values()), {}
        for connection in connections:
            await _close_quietly(connection)


async def _close_quietly(connection: _Connection) -> None:
    with contextlib.suppress(Exception):
        async with asyncio.timeout(5.0):
            await connection.stack.aclose()
