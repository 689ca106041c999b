"""QUIC (``hypercorn.protocol.quic.QuicProtocol``, ``hypercorn.asyncio.udp_server.UDPServer``): the datagram
loop, its timers and its socket.

* The datagram queue between the socket and the QUIC state machine held 10 packets; while the app wrote to
  disk, later packets were dropped, and QUIC's loss recovery cut throughput to a fifth. We queue
  ``DATAGRAM_QUEUE`` packets and ask for a larger socket receive buffer.
* The datagram loop itself is replaced (``quic_loop.py``): datagrams are routed in batches to one task
  per connection, which alone processes that connection's events (Hypercorn's timer task and datagram
  loop could interleave them) and sends once per batch.
* aioquic's receive windows start at 1 MiB and double as they fill; we start them larger.
* On shutdown the datagram loop only noticed it should stop when a packet came in, so every stop took the
  whole graceful timeout; it is now nudged until its connections are gone.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from typing import Any

from hypercorn.asyncio.udp_server import UDPServer
from hypercorn.events import Closed
from hypercorn.protocol.quic import QuicProtocol

from tusedge.server.hypercorn_fixes.quic_loop import batched_run
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
        name="quic-batched-loop",
        target=UDPServer,
        attribute="run",
        build=lambda original: batched_run,
        kind="replace",
        fingerprint="2ccffada3daf8bcc",
        reason="route datagrams in batches to one task per connection that alone feeds QUIC, runs its timer,"
        " delivers its events in order and sends once per batch: one connection whose app waits no longer holds up"
        " every other HTTP/3 connection; the timer task and the datagram loop no longer deliver one connection's"
        " events concurrently (chunks could be reordered or, re-armed mid-delivery, lost); per-datagram event"
        " rounds no longer cost most of the CPU",
        upstream="hypercorn 0.18.0 asyncio/udp_server.py UDPServer.run and protocol/quic.py QuicProtocol.handle,"
        " _handle_events, send_all, _handle_timer (reimplemented in quic_loop.py); no upstream issue",
        test="tests/e2e/test_http3_race.py::test_an_http3_request_waiting_for_its_app_holds_up_no_other_quic_connection",
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
