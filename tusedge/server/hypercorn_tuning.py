"""HTTP/2 and HTTP/3 fixes and flow-control tuning for Hypercorn 0.18, installed by :func:`install` in every
server process before the app is loaded (``serve.worker_app``). docs/http2-http3.md explains the figures.

Hypercorn has no settings for these, so we replace a few of its protocol methods. Each change is
covered by an end-to-end test (tests/e2e/test_http2.py, test_http3.py), which is what tells us when a new
Hypercorn release breaks one.

HTTP/2 (``H2Protocol``)
    Hypercorn advertises h2's defaults: 16 KiB frames and a 64 KiB window per stream and per connection
    (``Config.h2_max_inbound_frame_size`` only sets an attribute h2 no longer reads). A client then sends
    an upload in 16 KiB frames and waits for a WINDOW_UPDATE every 32 KiB, which costs two thirds of the
    throughput. We advertise ``MAX_FRAME_SIZE`` and ``INITIAL_WINDOW_SIZE`` and open the connection
    window. Hypercorn acknowledges data only once the app has taken it, so the windows also bound what one
    stream and one connection can make us buffer.

HTTP/3 (``QuicProtocol``, ``H3Protocol``, ``UDPServer``)
    * A request the client resets (RESET_STREAM, STOP_SENDING) or whose connection ends never told the
      app: its ``receive()`` waited forever and the upload stayed locked until the lock went stale. We
      close the stream, so the app sees ``http.disconnect`` and keeps what arrived, as over TCP.
    * Body data that arrives after the response (the client sends on while we answer early, e.g. 409)
      raised ``KeyError`` in the datagram loop and ended HTTP/3 for the whole process. We drop it, and
      what the app sends on a stream that is gone.
    * A request answered before its body was read (e.g. 409, or after waiting for a lock) left the
      datagram loop blocked for good on the full receive queue of an app that had finished: no more
      HTTP/3 at all in that process (HTTP/1.1 and HTTP/2 lost just that connection). When an app
      finishes we empty its queue, which releases the blocked put; the data that follows is dropped.
    * The datagram queue between the socket and the QUIC state machine held 10 packets; while the app
      wrote to disk, later packets were dropped, and QUIC's loss recovery cut throughput to a fifth. We
      queue ``DATAGRAM_QUEUE`` packets and ask for a larger socket receive buffer.
    * The timer task was cancelled and recreated after every packet sent, even when the deadline had
      not moved; we re-arm it only when it changed.
    * aioquic's receive windows start at 1 MiB and double as they fill; we start them larger.
    * On shutdown the datagram loop only noticed it should stop when a packet came in, so every stop
      took the whole graceful timeout; it is now nudged until its connections are gone.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from functools import partial
from typing import Any

import h2.settings
from aioquic.h3.events import DataReceived, HeadersReceived
from aioquic.quic.events import ConnectionTerminated, QuicEvent, StopSendingReceived, StreamReset
from hypercorn.asyncio.udp_server import UDPServer
from hypercorn.events import Closed, RawData
from hypercorn.protocol.events import Body, EndBody, Request, StreamClosed
from hypercorn.protocol.events import Event as StreamEvent
from hypercorn.protocol.h2 import H2Protocol
from hypercorn.protocol.h3 import H3Protocol
from hypercorn.protocol.http_stream import HTTPStream
from hypercorn.protocol.quic import QuicProtocol

KIB = 1024
MIB = 1024 * KIB

H2_MAX_FRAME_BYTES = 256 * KIB
"""Largest HTTP/2 DATA frame a client may send us (SETTINGS_MAX_FRAME_SIZE; h2 default 16 KiB)."""
H2_STREAM_WINDOW_BYTES = 4 * MIB
"""Per-stream receive window (SETTINGS_INITIAL_WINDOW_SIZE; default 64 KiB)."""
H2_CONNECTION_WINDOW_BYTES = 16 * MIB
"""Per-connection receive window, shared by its streams (default 64 KiB)."""
QUIC_MAX_DATA_BYTES = 16 * MIB
"""Initial per-connection QUIC receive window (aioquic default 1 MiB; it doubles as it fills)."""
QUIC_MAX_STREAM_DATA_BYTES = 8 * MIB
"""Initial per-stream QUIC receive window (aioquic default 1 MiB; it doubles as it fills)."""
DATAGRAM_QUEUE = 1024
"""Datagrams waiting for the QUIC state machine (Hypercorn: 10). About 1.5 MiB at most."""
UDP_RECEIVE_BUFFER_BYTES = 4 * MIB
"""Requested SO_RCVBUF of the QUIC socket; the kernel caps it at net.core.rmem_max."""

_installed = False


def install() -> None:
    """Apply the changes above to Hypercorn's classes (idempotent, per process)."""
    global _installed
    if _installed:
        return
    _installed = True
    _set(H2Protocol, "__init__", _wrap_h2_init(H2Protocol.__init__))
    _set(H2Protocol, "initiate", _wrap_h2_initiate(H2Protocol.initiate))
    _set(QuicProtocol, "__init__", _wrap_quic_init(QuicProtocol.__init__))
    _set(QuicProtocol, "send_all", _quic_send_all)
    _set(QuicProtocol, "_handle_timer", _quic_handle_timer)
    _set(H3Protocol, "handle", _h3_handle)
    _set(H3Protocol, "stream_send", _wrap_h3_stream_send(H3Protocol.stream_send))
    _set(HTTPStream, "app_send", _wrap_http_stream_app_send(HTTPStream.app_send))
    _set(UDPServer, "__init__", _wrap_udp_init(UDPServer.__init__))
    _set(UDPServer, "connection_made", _wrap_udp_connection_made(UDPServer.connection_made))
    _set(UDPServer, "run", _wrap_udp_run(UDPServer.run))


def _set(cls: type, name: str, value: Any) -> None:
    setattr(cls, name, value)


# --- HTTP/2 ----------------------------------------------------------------------------------------------
def _wrap_h2_init(original: Any) -> Any:
    def __init__(self: H2Protocol, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        codes = h2.settings.SettingCodes
        # Hypercorn replaced h2's local settings with its own, before anything was sent: we do the same
        # with two more values, so the SETTINGS frame of initiate() carries them.
        self.connection.local_settings = h2.settings.Settings(
            client=False,
            initial_values={
                codes.MAX_CONCURRENT_STREAMS: self.config.h2_max_concurrent_streams,
                codes.MAX_HEADER_LIST_SIZE: self.config.h2_max_header_list_size,
                codes.ENABLE_CONNECT_PROTOCOL: 1,
                codes.INITIAL_WINDOW_SIZE: H2_STREAM_WINDOW_BYTES,
                codes.MAX_FRAME_SIZE: self.config.h2_max_inbound_frame_size,
            },
        )
        self.connection.max_inbound_frame_size = self.config.h2_max_inbound_frame_size

    return __init__


def _wrap_h2_initiate(original: Any) -> Any:
    async def initiate(
        self: H2Protocol, headers: list[tuple[bytes, bytes]] | None = None, settings: bytes | None = None
    ) -> None:
        await original(self, headers, settings)
        # The connection window starts at 65,535 bytes whatever SETTINGS say (RFC 9113 section 6.9.2).
        increment = H2_CONNECTION_WINDOW_BYTES - self.connection.inbound_flow_control_window
        if increment > 0:
            self.connection.increment_flow_control_window(increment)
            await self._flush()

    return initiate


# --- HTTP/3 ----------------------------------------------------------------------------------------------
def _wrap_quic_init(original: Any) -> Any:
    def __init__(self: QuicProtocol, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        self.quic_config.max_data = QUIC_MAX_DATA_BYTES
        self.quic_config.max_stream_data = QUIC_MAX_STREAM_DATA_BYTES

    return __init__


async def _quic_send_all(self: QuicProtocol, connection: Any) -> None:
    for data, address in connection.quic.datagrams_to_send(now=self.context.time()):
        await self.send(RawData(data=data, address=address))
    timer = connection.quic.get_timer()
    if timer is not None and timer != getattr(connection, "tusedge_timer_at", None):
        connection.tusedge_timer_at = timer
        await connection.task.restart(self.task_group, partial(self._handle_timer, timer, connection))


async def _quic_handle_timer(self: QuicProtocol, timer: float, connection: Any) -> None:
    await self.context.sleep(max(0.0, timer - self.context.time()))
    connection.tusedge_timer_at = None  # fired: the next send_all arms whatever comes next
    connection.quic.handle_timer(now=self.context.time())
    await self._handle_events(connection, None)


async def _h3_close_stream(self: H3Protocol, stream_id: int) -> None:
    stream = self.streams.pop(stream_id, None)
    if stream is not None:
        await stream.handle(StreamClosed(stream_id=stream_id))


async def _h3_handle(self: H3Protocol, quic_event: QuicEvent) -> None:
    if isinstance(quic_event, StreamReset | StopSendingReceived):
        await _h3_close_stream(self, quic_event.stream_id)
    elif isinstance(quic_event, ConnectionTerminated):
        for stream_id in list(self.streams):
            await _h3_close_stream(self, stream_id)
    for event in self.connection.handle_event(quic_event):
        if isinstance(event, HeadersReceived):
            stream = self.streams.get(event.stream_id)
            if stream is None:
                if self.context.terminated.is_set():
                    continue
                await self._create_stream(event)
                stream = self.streams.get(event.stream_id)
            # else: trailers, which ASGI cannot pass on
            if stream is not None and event.stream_ended:
                await stream.handle(EndBody(stream_id=event.stream_id))
        elif isinstance(event, DataReceived):
            stream = self.streams.get(event.stream_id)
            if stream is None:
                continue  # the request already ended: answered early, or reset
            if event.data:
                await stream.handle(Body(stream_id=event.stream_id, data=event.data))
            if event.stream_ended:
                await stream.handle(EndBody(stream_id=event.stream_id))


def _wrap_h3_stream_send(original: Any) -> Any:
    async def stream_send(self: H3Protocol, event: StreamEvent) -> None:
        # A stream we closed above (or that finished) takes no more frames; aioquic would raise.
        if isinstance(event, Request) or event.stream_id in self.streams:
            await original(self, event)

    return stream_send


def _wrap_http_stream_app_send(original: Any) -> Any:
    async def app_send(self: HTTPStream, message: Any) -> None:
        await original(self, message)
        if message is None:  # the app has returned and will never read its receive queue again
            queue = getattr(self.app_put, "__self__", None)  # app_put is the queue's bound put()
            if isinstance(queue, asyncio.Queue):
                while not queue.empty():
                    queue.get_nowait()  # each get wakes a put waiting for room

    return app_send


def _wrap_udp_init(original: Any) -> Any:
    def __init__(self: UDPServer, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        self.protocol_queue = asyncio.Queue(DATAGRAM_QUEUE)

    return __init__


def _wrap_udp_connection_made(original: Any) -> Any:
    def connection_made(self: UDPServer, transport: asyncio.DatagramTransport) -> None:
        original(self, transport)
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError, AttributeError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, UDP_RECEIVE_BUFFER_BYTES)

    return connection_made


def _wrap_udp_run(original: Any) -> Any:
    async def run(self: UDPServer) -> None:
        async def nudge() -> None:
            # The loop checks "terminated and no connections left" only after handling an event.
            await self.context.terminated.wait()
            while True:
                with contextlib.suppress(asyncio.QueueFull):
                    self.protocol_queue.put_nowait(Closed())
                await asyncio.sleep(0.1)

        nudger = asyncio.ensure_future(nudge())
        try:
            await original(self)
        finally:
            nudger.cancel()

    return run
