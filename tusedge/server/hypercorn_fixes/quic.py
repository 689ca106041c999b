"""QUIC (``hypercorn.protocol.quic.QuicProtocol``, ``hypercorn.asyncio.udp_server.UDPServer``): the datagram
loop, its timers and its socket.

* The datagram queue between the socket and the QUIC state machine held 10 packets; while the app wrote to
  disk, later packets were dropped, and QUIC's loss recovery cut throughput to a fifth. We queue
  ``DATAGRAM_QUEUE`` packets and ask for a larger socket receive buffer.
* The timer task was cancelled and recreated after every packet sent, even when the deadline had not
  moved; we re-arm it only when it changed.
* aioquic's receive windows start at 1 MiB and double as they fill; we start them larger.
* On shutdown the datagram loop only noticed it should stop when a packet came in, so every stop took the
  whole graceful timeout; it is now nudged until its connections are gone.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from functools import partial
from typing import Any

from hypercorn.asyncio.udp_server import UDPServer
from hypercorn.events import Closed, RawData
from hypercorn.protocol.quic import QuicProtocol

from tusedge.server.hypercorn_fixes.table import Patch

KIB = 1024
MIB = 1024 * KIB

QUIC_MAX_DATA_BYTES = 16 * MIB
"""Initial per-connection QUIC receive window (aioquic default 1 MiB; it doubles as it fills)."""
QUIC_MAX_STREAM_DATA_BYTES = 8 * MIB
"""Initial per-stream QUIC receive window (aioquic default 1 MiB; it doubles as it fills)."""
DATAGRAM_QUEUE = 1024
"""Datagrams waiting for the QUIC state machine (Hypercorn: 10). About 1.5 MiB at most."""
UDP_RECEIVE_BUFFER_BYTES = 4 * MIB
"""Requested SO_RCVBUF of the QUIC socket; the kernel caps it at net.core.rmem_max."""


def _wrap_quic_init(original: Any) -> Any:
    def __init__(self: QuicProtocol, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        self.quic_config.max_data = QUIC_MAX_DATA_BYTES
        self.quic_config.max_stream_data = QUIC_MAX_STREAM_DATA_BYTES

    return __init__


async def _send_all(self: QuicProtocol, connection: Any) -> None:
    for data, address in connection.quic.datagrams_to_send(now=self.context.time()):
        await self.send(RawData(data=data, address=address))
    timer = connection.quic.get_timer()
    if timer is not None and timer != getattr(connection, "tusedge_timer_at", None):
        connection.tusedge_timer_at = timer
        await connection.task.restart(self.task_group, partial(self._handle_timer, timer, connection))


async def _handle_timer(self: QuicProtocol, timer: float, connection: Any) -> None:
    await self.context.sleep(max(0.0, timer - self.context.time()))
    connection.tusedge_timer_at = None  # fired: the next send_all arms whatever comes next
    connection.quic.handle_timer(now=self.context.time())
    await self._handle_events(connection, None)


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


PATCHES = (
    Patch(
        name="quic-windows",
        target=QuicProtocol,
        attribute="__init__",
        build=_wrap_quic_init,
        kind="wrap",
        fingerprint="ae780b89cc19cad6",
        reason="start QUIC receive windows at 16 MiB per connection and 8 MiB per stream (aioquic: 1 MiB)",
        upstream="hypercorn 0.18.0 protocol/quic.py QuicProtocol.__init__ builds its QuicConfiguration with no"
        " way to set them; no upstream issue",
        test="tests/e2e/test_http3.py::test_quic_server_starts_with_large_receive_windows",
    ),
    Patch(
        name="quic-timer-rearm",
        target=QuicProtocol,
        attribute="send_all",
        build=lambda original: _send_all,
        kind="replace",
        fingerprint="57a7661daed93107",
        reason="re-arm the connection's timer task only when its deadline moved (15% of server CPU)",
        upstream="hypercorn 0.18.0 protocol/quic.py QuicProtocol.send_all restarts the task per send; no issue",
        test="",
    ),
    Patch(
        name="quic-timer-fired",
        target=QuicProtocol,
        attribute="_handle_timer",
        build=lambda original: _handle_timer,
        kind="replace",
        fingerprint="bfcb2e9a9815d955",
        reason="companion of quic-timer-rearm: a fired timer forgets its deadline",
        upstream="hypercorn 0.18.0 protocol/quic.py QuicProtocol._handle_timer",
        test="",
    ),
    Patch(
        name="udp-queue",
        target=UDPServer,
        attribute="__init__",
        build=_wrap_udp_init,
        kind="wrap",
        fingerprint="55ad0f1a87d1a0e8",
        reason="queue 1024 datagrams, not 10, while the app is busy (drops cut HTTP/3 uploads to a fifth)",
        upstream="hypercorn 0.18.0 asyncio/udp_server.py UDPServer.__init__: asyncio.Queue(10); no issue",
        test="tests/e2e/test_http3.py::test_an_upload_over_http3_loses_no_packets_while_the_server_writes",
    ),
    Patch(
        name="udp-receive-buffer",
        target=UDPServer,
        attribute="connection_made",
        build=_wrap_udp_connection_made,
        kind="wrap",
        fingerprint="1c6f511bc3a724b4",
        reason="ask for a 4 MiB SO_RCVBUF on the QUIC socket (the default ~200 KiB drops bursts)",
        upstream="hypercorn 0.18.0 asyncio/udp_server.py UDPServer.connection_made; no upstream issue",
        test="tests/e2e/test_http3.py::test_quic_socket_asks_for_a_large_receive_buffer",
    ),
    Patch(
        name="udp-shutdown",
        target=UDPServer,
        attribute="run",
        build=_wrap_udp_run,
        kind="wrap",
        fingerprint="2ccffada3daf8bcc",
        reason="the datagram loop notices shutdown without waiting for a packet (stops took the graceful timeout)",
        upstream="hypercorn 0.18.0 asyncio/udp_server.py UDPServer.run checks for shutdown only after a packet",
        test="tests/e2e/test_http3.py::test_an_idle_http3_server_stops_at_once",
    ),
)
