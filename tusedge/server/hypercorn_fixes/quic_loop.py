"""The batched QUIC datagram loop (replaces ``hypercorn.asyncio.udp_server.UDPServer.run``).

Hypercorn feeds QUIC one datagram at a time and, after each, processes the connection's events and sends
what it has to send; its timer task processes the same connection's events on its own. Two costs and one
defect follow:

* per datagram, a round of event processing, a ``datagrams_to_send`` and a timer re-arm: most of the
  server's CPU for an upload went there;
* the timer task and the datagram loop both pop and deliver a connection's events. Both can be suspended
  in the middle (delivering a body chunk waits for room in the app's queue), so a connection's body chunks
  could reach the app out of order, and the timer task is cancelled whenever the deadline is re-armed,
  which can be while it holds a popped chunk: that chunk is lost and the upload ends short.

Here one loop drains the socket's queue in batches (up to ``BATCH`` datagrams), hands each datagram to its
connection's inbox, and each connection has one task, its *pump*, that alone touches the connection's
events: it feeds what its inbox holds to QUIC, runs QUIC's timer when due, delivers the events in order,
then sends once. Event processing of a connection is therefore serialised by construction, and nothing is
ever cancelled while it holds an event. Sends the app makes (responses) go out at once, as before. Before
the events go to HTTP/3, each stream's data of the batch is joined (:func:`coalesce`), so the app gets one
body message per batch instead of one per ~1,150-byte packet.

A pump that waits for a slow app leaves its datagrams unacknowledged in its inbox, so the client's
congestion window, not a drop, slows it down; only beyond ``INBOX_LIMIT`` datagrams are dropped (as the
kernel would). Other connections are not held up, which Hypercorn's single loop did.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from typing import Any

from aioquic.buffer import Buffer  # type: ignore[attr-defined]  # a C extension, exported
from aioquic.quic.connection import QuicConnection
from aioquic.quic.events import (
    ConnectionIdIssued,
    ConnectionIdRetired,
    ConnectionTerminated,
    ProtocolNegotiated,
    QuicEvent,
    StreamDataReceived,
)
from aioquic.quic.packet import PACKET_TYPE_INITIAL, encode_quic_version_negotiation, pull_quic_header
from hypercorn.asyncio.task_group import TaskGroup
from hypercorn.asyncio.udp_server import UDPServer
from hypercorn.events import RawData
from hypercorn.protocol.h3 import H3Protocol
from hypercorn.protocol.quic import QuicProtocol
from hypercorn.typing import ConnectionState
from hypercorn.utils import parse_socket_addr

from tusedge.server.hypercorn_fixes.quic_workers import steer_configuration
from tusedge.server.quic_retry import RetryAdmission
from tusedge.server.quic_steering import Steering

log = logging.getLogger("tusedge.quic")

BATCH = 64
"""Datagrams taken from the socket queue (and fed to one connection) before events are processed."""
INBOX_LIMIT = 2048
"""Datagrams that may wait for one connection's pump (about 3 MiB); more are dropped."""

Address = Any  # what the transport gives: (host, port) or (host, port, flowinfo, scope_id)


class _Connection:
    """One QUIC connection, its inbox and its pump (the only code that takes its events)."""

    __slots__ = ("address", "cids", "closed", "h3", "inbox", "pump", "quic", "timer", "timer_at", "timer_due", "wake")

    def __init__(self, quic: QuicConnection, cids: set[bytes], address: Address) -> None:
        self.quic = quic
        self.cids = cids
        self.address = address
        self.h3: H3Protocol | None = None
        self.inbox: collections.deque[tuple[bytes, Address]] = collections.deque()
        self.wake = asyncio.Event()
        self.pump: asyncio.Task[None] | None = None
        self.timer: asyncio.TimerHandle | None = None
        self.timer_at: float | None = None
        self.timer_due = False
        self.closed = False


class BatchedQuic:
    """Hypercorn's ``QuicProtocol`` (it still holds the configuration: ``quic-windows`` applies) with the
    routing of ``QuicProtocol.handle`` and the event handling of ``QuicProtocol._handle_events``, run per
    connection by its pump instead of per datagram."""

    def __init__(self, server: UDPServer, task_group: TaskGroup, transport: asyncio.DatagramTransport) -> None:
        sock = transport.get_extra_info("socket")
        self.quic_protocol = QuicProtocol(
            server.app, server.config, server.context, task_group, ConnectionState(server.state.copy()),
            parse_socket_addr(sock.family, sock.getsockname()), server.protocol_send,
        )  # fmt: skip
        self.udp = server
        self.transport = transport
        self.task_group = task_group
        self.connections: dict[bytes, _Connection] = {}
        self.loop = asyncio.get_running_loop()
        self.dropped = 0
        # --workers with steering (quic_steering.py): new connections come through a Retry, and the ids
        # this worker issues name it.
        steering = getattr(server.config, "tusedge_quic_steering", None)
        self.admission = RetryAdmission(steering) if isinstance(steering, Steering) else None
        if isinstance(steering, Steering):
            steer_configuration(self.quic_protocol.quic_config, steering)

    @property
    def idle(self) -> bool:
        return not self.connections

    # -- the datagram loop's side: route, never wait -------------------------------------------------------

    def route(self, data: bytes, address: Address) -> _Connection | None:
        qp = self.quic_protocol
        try:
            header = pull_quic_header(Buffer(data=data), host_cid_length=8)
        except ValueError:
            return None
        versions = qp.quic_config.supported_versions
        if header.version is not None and header.version not in versions:
            self.transport.sendto(
                encode_quic_version_negotiation(
                    source_cid=header.destination_cid, destination_cid=header.source_cid, supported_versions=versions
                ),
                address,
            )
            return None
        connection = self.connections.get(header.destination_cid)
        if (
            connection is None
            and len(data) >= 1200
            and header.packet_type == PACKET_TYPE_INITIAL
            and not qp.context.terminated.is_set()
        ):
            original, retry = header.destination_cid, None
            if self.admission is not None:
                admitted = self.admission.admit(header, address, self.transport.sendto)
                if admitted is None:
                    return None  # answered with a Retry (or refused)
                original, retry = admitted
            quic = QuicConnection(
                configuration=qp.quic_config,
                original_destination_connection_id=original,
                retry_source_connection_id=retry,
            )
            connection = _Connection(quic, {header.destination_cid, quic.host_cid}, address)
            self.connections[header.destination_cid] = connection
            self.connections[quic.host_cid] = connection
            connection.pump = asyncio.ensure_future(self._pump(connection))
        if connection is None or connection.closed:
            return None
        if len(connection.inbox) >= INBOX_LIMIT:
            self.dropped += 1
            return None
        connection.inbox.append((data, address))
        return connection

    # -- the pump: the only code that takes a connection's events ------------------------------------------

    async def _pump(self, connection: _Connection) -> None:
        quic = connection.quic
        time = self.loop.time
        try:
            while not connection.closed:
                await connection.wake.wait()
                connection.wake.clear()
                now = time()
                inbox = connection.inbox
                for _ in range(min(len(inbox), BATCH)):
                    data, address = inbox.popleft()
                    connection.address = address
                    quic.receive_datagram(data, address, now=now)
                if inbox:
                    connection.wake.set()  # the rest after this batch's events and sends
                if connection.timer_due:
                    # call_at may fire a little before the deadline: QUIC is told it has come
                    deadline, connection.timer_at, connection.timer_due = connection.timer_at, None, False
                    quic.handle_timer(now=max(now, deadline or now))
                await self._handle_events(connection)
                self._send(connection)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("QUIC connection from %s failed; closing it", connection.address)
            self._forget(connection)
            quic.close(error_code=0x1)  # INTERNAL_ERROR
            self._send(connection)
        finally:
            if connection.timer is not None:
                connection.timer.cancel()

    async def _handle_events(self, connection: _Connection) -> None:
        qp = self.quic_protocol
        quic = connection.quic
        events: list[QuicEvent] = []
        event = quic.next_event()
        while event is not None:
            if isinstance(event, ConnectionTerminated):
                self._forget(connection)
            elif isinstance(event, ProtocolNegotiated):
                connection.h3 = H3Protocol(
                    qp.app, qp.config, qp.context, qp.task_group, qp.state, connection.address, qp.server, quic,
                    lambda: self._app_sent(connection),
                )  # fmt: skip
            elif isinstance(event, ConnectionIdIssued):
                connection.cids.add(event.connection_id)
                self.connections[event.connection_id] = connection
            elif isinstance(event, ConnectionIdRetired):
                connection.cids.discard(event.connection_id)
                self.connections.pop(event.connection_id, None)
            if connection.h3 is not None:
                events.append(event)
            event = quic.next_event()
        if connection.h3 is not None:
            for event in coalesce(events):
                await connection.h3.handle(event)  # may wait for room in an app's queue

    def _forget(self, connection: _Connection) -> None:
        connection.closed = True
        for cid in connection.cids:
            if self.connections.get(cid) is connection:
                del self.connections[cid]
        connection.cids = set()
        connection.inbox.clear()
        # Noticing that the last connection went during a shutdown is udp-shutdown's part (it wraps run).

    def _send(self, connection: _Connection) -> None:
        """Send what QUIC has for this connection, and arm its timer if the deadline moved."""
        sendto = self.transport.sendto
        for data, address in connection.quic.datagrams_to_send(now=self.loop.time()):
            sendto(data, address)
        if connection.closed:
            return
        timer_at = connection.quic.get_timer()
        if timer_at != connection.timer_at:
            if connection.timer is not None:
                connection.timer.cancel()
                connection.timer = None
            connection.timer_at, connection.timer_due = timer_at, False
            if timer_at is not None:
                connection.timer = self.loop.call_at(timer_at, self._timer_fired, connection)

    @staticmethod
    def _timer_fired(connection: _Connection) -> None:
        connection.timer = None
        connection.timer_due = True
        connection.wake.set()

    async def _app_sent(self, connection: _Connection) -> None:
        """H3Protocol's ``send``: the app queued a response or body on a stream."""
        self._send(connection)

    async def stop(self) -> None:
        pumps = [c.pump for c in {id(c): c for c in self.connections.values()}.values() if c.pump is not None]
        for pump in pumps:
            pump.cancel()
        await asyncio.gather(*pumps, return_exceptions=True)


def coalesce(events: list[QuicEvent]) -> list[QuicEvent]:
    """The events in order, but each stream's data received since the last other event joined into one
    ``StreamDataReceived``: a datagram carries ~1,150 bytes of one stream, and every event costs a pass
    through HTTP/3 framing, Hypercorn and the app's body reader (one ASGI message each).

    aioquic emits a stream's data in order and contiguous, so joining consecutive pieces of one stream is
    exact; data of different streams may be reordered against each other (streams are independent), never
    against any other event (a reset, a termination), which comes after all the data received before it."""
    out: list[QuicEvent] = []
    pieces: dict[int, list[StreamDataReceived]] = {}  # stream id -> its data events since the last flush
    slots: dict[int, int] = {}  # stream id -> where its joined event goes in out

    def flush() -> None:
        for stream_id, parts in pieces.items():
            if len(parts) > 1:
                data = b"".join(part.data for part in parts)
                out[slots[stream_id]] = StreamDataReceived(data, parts[-1].end_stream, stream_id)
        pieces.clear()
        slots.clear()

    for event in events:
        if type(event) is StreamDataReceived:
            parts = pieces.get(event.stream_id)
            if parts is None:
                pieces[event.stream_id] = [event]
                slots[event.stream_id] = len(out)
                out.append(event)
            else:
                parts.append(event)
        else:
            flush()
            out.append(event)
    flush()
    return out


async def batched_run(self: UDPServer) -> None:
    """``UDPServer.run`` with the batched loop: up to ``BATCH`` datagrams routed per round, then the pumps
    run; it ends, as Hypercorn's, once the server is terminating and no connection is left."""
    assert self.transport is not None
    queue: asyncio.Queue[Any] = self.protocol_queue
    async with TaskGroup(self.loop) as task_group:
        batched = BatchedQuic(self, task_group, self.transport)
        self.protocol = batched.quic_protocol
        try:
            while not self.context.terminated.is_set() or not batched.idle:
                items = [await queue.get()]
                while len(items) < BATCH and not queue.empty():
                    items.append(queue.get_nowait())
                touched: dict[int, _Connection] = {}
                for item in items:
                    if isinstance(item, RawData):  # else a nudge (None, Closed) to look at the condition
                        connection = batched.route(item.data, item.address)
                        if connection is not None:
                            touched[id(connection)] = connection
                for connection in touched.values():
                    connection.wake.set()
                await asyncio.sleep(0)  # let the pumps take this batch before the next is routed
        finally:
            await batched.stop()


__all__ = ["BATCH", "INBOX_LIMIT", "BatchedQuic", "batched_run"]
