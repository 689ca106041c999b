"""TCP connections (``hypercorn.asyncio.tcp_server.TCPServer``, HTTP/1.1 and HTTP/2 over TCP and TLS).

* Closing a socket with unread bytes in it makes the kernel answer with a reset, which can destroy the
  answer just sent before the client reads it: a 1 MiB header block got a reset, not its 431, and so could
  any error answered before a body was read. A connection closed while its client is still sending now
  closes the way RFC 9112 9.6 asks: our side is shut down first (the client sees the answer end), then
  what it sends is read and dropped until it closes too, for at most ``LINGER_S`` and ``LINGER_BYTES``.
* Nothing bounded the time a request's head could take: a client sending one header byte a second held
  its connection until ``--keep-alive-s`` had passed with no byte at all. Once the first byte of a request
  has arrived, the whole head must arrive within ``--header-timeout-s``, else 408 and the connection
  closes. Over HTTP/2 the same holds for each header block (HEADERS and its CONTINUATION frames), ended
  with a GOAWAY (hypercorn_fixes.h2).
* Hypercorn reads 64 KiB at a time; the loop reads up to ``READ_BYTES`` (256 KiB), so a body costs a quarter
  of the per-chunk turns (h11, the stream, every middleware's ``receive``).
* Hypercorn tells the app nothing about connections. Each connection is registered in the app's
  :class:`~tusedge.server.connections.ConnectionTable` (from the lifespan state) for as long as it is open,
  and its record rides in every request's ``scope["state"]``: the per-client connection cap and the file
  descriptor reserve answer from there.
* Hypercorn's keep-alive timer is a task (``AsyncioSingleTask``) that it cancels when a request arrives and
  starts again, with a ``wait_for`` task of its own, after each answer: two tasks made and cancelled per
  request (21.6 us of CPU against 1.8 us for a loop timer, docs/performance.md). :class:`IdleTimer` keeps the
  contract (armed while idle; when it runs out, or the worker shuts down while it is armed, the connection
  closes as ``_idle_timeout`` closed it) with one ``call_later`` handle. It also holds no task in the
  connection's task group, so a peer that closes its side (FIN/EOF) while the connection is idle is released
  at once: Hypercorn's idle task kept the group open, the socket in CLOSE-WAIT holding a file descriptor, for
  ``--keep-alive-s`` (500 quick ``curl -X OPTIONS`` left 500 sockets open).
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import fcntl
import struct
import termios
import time
import weakref
from ssl import SSLError
from typing import Any

import h11
from hypercorn.asyncio.tcp_server import MAX_RECV, TCPServer
from hypercorn.events import Closed, RawData
from hypercorn.protocol.h2 import H2Protocol
from hypercorn.protocol.h11 import H11Protocol

from tusedge.server.hypercorn_fixes import h2 as h2_fixes
from tusedge.server.hypercorn_fixes.table import Patch

LINGER_S = 2.0
"""How long a closing connection goes on reading (and dropping) what its client still sends."""
LINGER_BYTES = 8 * 1024 * 1024
"""The most it reads so; a client still sending past this gets the reset."""

READ_BYTES = 256 * 1024
"""The most one read of the loop takes (Hypercorn reads 64 KiB). A body's bytes reach the app in chunks of up to
this size, so a GiB costs ~4,000 turns of everything each chunk passes (h11, the stream, the app queue, every
middleware's ``receive``, the body meter) instead of 16,384: 0.3-0.4 s of CPU per GiB less (docs/performance.md).
256 KiB is what one read callback of uvloop (and of asyncio) hands over at most (reads of 1 MiB returned
192-256 KiB at full speed); the stream's buffer limit is unchanged, and the app queue
(``max_app_queue_size`` messages) holds at most 10 x 256 KiB per request."""

REFUSED_IDLE_S = 2.0
"""How long a connection that is refused (past a per-client cap, in the descriptor reserve) may stay idle."""

_READ_ERRORS = (ConnectionError, OSError, SSLError, RuntimeError)


def _h11(server: TCPServer) -> h11.Connection | None:
    wrapper = getattr(server, "protocol", None)
    inner = getattr(wrapper, "protocol", None)
    if isinstance(inner, H11Protocol) and isinstance(inner.connection, h11.Connection):
        return inner.connection
    return None


def _unread_bytes(server: TCPServer) -> int:
    sock = server.writer.get_extra_info("socket")
    try:
        raw = fcntl.ioctl(sock.fileno(), termios.FIONREAD, b"\0\0\0\0")
    except (OSError, ValueError, AttributeError):
        return 0
    return int(struct.unpack("i", raw)[0])


def _client_still_sending(server: TCPServer) -> bool:
    if server.reader.at_eof():
        return False
    connection = _h11(server)
    if connection is not None and connection.their_state not in (h11.IDLE, h11.DONE, h11.CLOSED):
        return True  # mid-request (its body not read, or a head h11 refused)
    return _unread_bytes(server) > 0


async def _drop_input(server: TCPServer, until: float) -> None:
    """Read and drop what the client sends until it closes, ``until`` passes or LINGER_BYTES arrived."""
    dropped = 0
    while not server.reader.at_eof() and dropped <= LINGER_BYTES:
        left = until - time.monotonic()
        if left <= 0:
            return
        try:
            data = await asyncio.wait_for(server.reader.read(MAX_RECV), left)
        except (TimeoutError, *_READ_ERRORS):
            return
        dropped += len(data)


def _wrap_close(original: Any) -> Any:
    async def _close(self: TCPServer) -> None:
        if not getattr(self, "tusedge_lingered", False):
            self.tusedge_lingered = True  # type: ignore[attr-defined]
            if _client_still_sending(self):
                until = time.monotonic() + LINGER_S
                self.tusedge_linger_until = until  # type: ignore[attr-defined]
                with contextlib.suppress(NotImplementedError, OSError, RuntimeError):
                    self.writer.write_eof()  # the client sees our answer end (not with TLS: no half-close)
                reader = getattr(self, "tusedge_reader", None)
                done: asyncio.Event | None = getattr(self, "tusedge_read_done", None)
                if reader is asyncio.current_task() or reader is None or done is None or reader.done():
                    await _drop_input(self, until)
                else:  # the read loop, in another task, drops the input until the client closes
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(done.wait(), LINGER_S)
        # Hypercorn's own _close passes over the errors of a peer that is gone already, but not ENOTCONN,
        # which wait_closed raises when the client had shut its side down first (found by the raw fuzzer,
        # tests/e2e/test_fuzz_raw.py: a traceback per such connection); its cleanup (finally) has run.
        with contextlib.suppress(OSError):
            await original(self)

    return _close


def _head_started(server: TCPServer, since: float | None) -> float | None:
    """When the head now being received began (None: no head is pending, a request is under way). Over
    HTTP/2, a header block (hypercorn_fixes.h2) is a head."""
    inner = getattr(getattr(server, "protocol", None), "protocol", None)
    if isinstance(inner, H2Protocol):
        pending = h2_fixes.header_block_pending(inner)
    else:
        connection = _h11(server)
        pending = connection is not None and connection.their_state is h11.IDLE
    if not pending:
        return None
    return since if since is not None else time.monotonic()


async def _head_timed_out(server: TCPServer) -> None:
    inner = server.protocol.protocol
    if isinstance(inner, H2Protocol):
        await h2_fixes.end_for_header_timeout(inner)
    elif isinstance(inner, H11Protocol) and inner.connection.our_state in (h11.IDLE, h11.SEND_RESPONSE):
        with contextlib.suppress(h11.LocalProtocolError):
            await inner._send_error_response(408)


async def _read_data(self: TCPServer) -> None:
    self.tusedge_reader = asyncio.current_task()  # type: ignore[attr-defined]
    self.tusedge_read_done = done = asyncio.Event()  # type: ignore[attr-defined]
    header_timeout: float | None = getattr(self.config, "tusedge_header_timeout_s", None) or None
    head_since: float | None = None
    try:
        while not self.reader.at_eof():
            timeout: float | None = self.config.read_timeout
            linger_until: float | None = getattr(self, "tusedge_linger_until", None)
            if linger_until is not None:
                await _drop_input(self, linger_until)
                break
            head_deadline = False  # the wait below ends at the pending head's deadline
            if head_since is not None and header_timeout is not None:
                left = max(0.0, head_since + header_timeout - time.monotonic())
                if timeout is None or left <= timeout:
                    timeout, head_deadline = left, True
            try:
                data = await asyncio.wait_for(self.reader.read(READ_BYTES), timeout)
            except TimeoutError:
                # Not "is time.monotonic() past the deadline?": the event loop's timer (milliseconds, under
                # uvloop) may fire a fraction of a millisecond before it, and the connection then closed
                # without its 408 (tests/e2e/test_connection_hygiene.py, once in a full run).
                if head_deadline:
                    await _head_timed_out(self)
                break
            except _READ_ERRORS:
                break
            if getattr(self, "tusedge_linger_until", None) is not None:
                continue  # closing: dropped (the loop's next turn drops the rest)
            await self.protocol.handle(RawData(data))
            if header_timeout is not None and data:
                head_since = _head_started(self, head_since)
    finally:
        done.set()
    await self.protocol.handle(Closed())


def _wrap_run(original: Any) -> Any:
    async def run(self: TCPServer) -> None:
        from tusedge.server.connections import CONNECTION_KEY, STATE_KEY, ConnectionTable

        table = self.state.get(STATE_KEY) if isinstance(self.state, dict) else None
        if not isinstance(table, ConnectionTable):
            await original(self)
            return
        sock = self.writer.get_extra_info("socket")
        peer = self.writer.get_extra_info("peername")
        connection = table.open(str(peer[0]) if peer else "?", sock.fileno() if sock is not None else -1)
        self.state = {**self.state, CONNECTION_KEY: connection}
        if connection.refusal is not None and self.config.keep_alive_timeout > REFUSED_IDLE_S:
            # A connection that is only there to be refused gets no minute of keep-alive to sit on its
            # descriptor (or its place under the client's cap) without sending a request.
            self.config = copy.copy(self.config)
            self.config.keep_alive_timeout = REFUSED_IDLE_S
        try:
            await original(self)
        finally:
            table.close(connection)

    return run


class IdleTimer:
    """``TCPServer.idle_task`` as a loop timer: ``restart`` arms it (the connection is idle), ``stop`` disarms
    it (a request arrived, or the connection ends). When it runs out, or the worker is terminated while it
    is armed, the connection is closed in a task of its task group, as Hypercorn's ``_idle_timeout`` does
    (``_initiate_server_close``, which a later ``stop`` does not cancel)."""

    __slots__ = ("closing", "handle", "server", "task_group")

    def __init__(self, server: TCPServer) -> None:
        self.server = server
        self.handle: asyncio.TimerHandle | None = None
        self.task_group: Any = None
        self.closing: asyncio.Task[None] | None = None

    async def restart(self, task_group: Any, action: Any) -> None:
        """``action`` (Hypercorn passes ``_idle_timeout``) is not run: the timer does what it did."""
        self.disarm()
        self.task_group = task_group
        if self.server.context.terminated.is_set():
            self.fire()
            return
        self.handle = self.server.loop.call_later(self.server.config.keep_alive_timeout, self.fire)
        _armed_timers(self.server.context).add(self)

    async def stop(self) -> None:
        self.disarm()

    def disarm(self) -> None:
        if self.handle is not None:
            self.handle.cancel()
            self.handle = None
            _armed_timers(self.server.context).discard(self)

    def fire(self) -> None:
        self.disarm()
        if self.closing is None:
            self.closing = self.task_group._task_group.create_task(self.server._initiate_server_close())


_ARMED: weakref.WeakKeyDictionary[Any, set[IdleTimer]] = weakref.WeakKeyDictionary()
_WATCHERS: set[asyncio.Task[None]] = set()


def _armed_timers(context: Any) -> set[IdleTimer]:
    """The armed timers of a worker's connections; the first call starts the task that fires them all when
    the worker is terminated (Hypercorn's ``_idle_timeout`` also waited for ``context.terminated``)."""
    timers = _ARMED.get(context)
    if timers is None:
        timers = _ARMED[context] = set()
        watcher = asyncio.get_running_loop().create_task(_fire_at_termination(context, timers))
        _WATCHERS.add(watcher)
        watcher.add_done_callback(_WATCHERS.discard)
    return timers


async def _fire_at_termination(context: Any, timers: set[IdleTimer]) -> None:
    await context.terminated.wait()
    for timer in list(timers):
        timer.fire()


def _wrap_init(original: Any) -> Any:
    def __init__(self: TCPServer, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        self.idle_task = IdleTimer(self)  # type: ignore[assignment]

    return __init__


PATCHES = (
    Patch(
        name="tcp-read-loop",
        target=TCPServer,
        attribute="_read_data",
        build=lambda original: _read_data,
        kind="replace",
        fingerprint="8e7ad8f4bfca2fd2",
        reason="a request's head must arrive within --header-timeout-s of its first byte (408), and a"
        " connection that is closing drops what its client still sends instead of parsing it",
        upstream="hypercorn 0.18.0 asyncio/tcp_server.py TCPServer._read_data has one read_timeout per read"
        " and no head timeout; no upstream issue",
        test="tests/e2e/test_connection_hygiene.py::test_a_head_trickled_slower_than_the_header_timeout_gets_408",
    ),
    Patch(
        name="tcp-connection-table",
        target=TCPServer,
        attribute="run",
        build=_wrap_run,
        kind="wrap",
        fingerprint="9437d01a916d887b",
        reason="each connection is registered with the app while it is open (per-client connection cap, the"
        " file descriptor reserve's 503)",
        upstream="hypercorn 0.18.0 asyncio/tcp_server.py TCPServer.run; ASGI has no connection events",
        test="tests/e2e/test_connection_hygiene.py::test_a_client_past_its_connection_cap_gets_429",
    ),
    Patch(
        name="tcp-lingering-close",
        target=TCPServer,
        attribute="_close",
        build=_wrap_close,
        kind="wrap",
        fingerprint="ea76225e14315206",
        reason="a connection closed while its client still sends shuts down our side, then drops input until"
        " the client closes (RFC 9112 9.6), so the answer (431, 400, 408, 413...) is not lost to a reset",
        upstream="hypercorn 0.18.0 asyncio/tcp_server.py TCPServer._close closes at once; no upstream issue",
        test="tests/e2e/test_connection_hygiene.py::test_a_one_mib_head_gets_its_431_not_a_reset",
    ),
    Patch(
        name="tcp-idle-timer",
        target=TCPServer,
        attribute="__init__",
        build=_wrap_init,
        kind="wrap",
        fingerprint="95a6f196b96bfa92",
        reason="the keep-alive timer is one loop timer per idle period, not two tasks made and cancelled around"
        " every request (server CPU per request); and a peer's FIN while the connection is idle closes it at"
        " once, not when --keep-alive-s runs out (the idle task held the connection's task group open, its"
        " socket in CLOSE-WAIT; this was fix tcp-eof-releases)",
        upstream="hypercorn 0.18.0 asyncio/tcp_server.py TCPServer.__init__ makes idle_task an"
        " AsyncioSingleTask; protocol_send restarts and stops it per request (_idle_timeout: a wait_for on"
        " context.terminated); no upstream issue",
        test="tests/e2e/test_connection_hygiene.py::test_a_departed_client_is_released_at_once",
    ),
)
