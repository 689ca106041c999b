"""TCP connections (``hypercorn.asyncio.tcp_server.TCPServer``, HTTP/1.1 and HTTP/2 over TCP and TLS).

* A peer that closed its side (FIN/EOF) while the connection was idle between requests was noticed by the
  read loop, but the connection was only released when the keep-alive timer fired: the idle timer task
  kept the connection's task group open, so the socket sat in CLOSE-WAIT, holding a file descriptor, for
  ``--keep-alive-s``. 500 quick ``curl -X OPTIONS`` left 500 sockets open. When the read loop ends we stop
  the idle timer, so the connection closes as soon as its requests (if any are still running) are done.
"""

from __future__ import annotations

from typing import Any

from hypercorn.asyncio.tcp_server import TCPServer

from tusedge.server.hypercorn_fixes.table import Patch


def _wrap_read_data(original: Any) -> Any:
    async def _read_data(self: TCPServer) -> None:
        await original(self)
        # The peer is gone (EOF, an error, or a read timeout): nothing more can arrive, so the keep-alive
        # timer has nothing to wait for. Requests still running finish; then the connection closes.
        await self.idle_task.stop()

    return _read_data


PATCHES = (
    Patch(
        name="tcp-eof-releases",
        target=TCPServer,
        attribute="_read_data",
        build=_wrap_read_data,
        kind="wrap",
        fingerprint="8e7ad8f4bfca2fd2",
        reason="a peer's FIN while the connection is idle closes it at once, not when --keep-alive-s runs out"
        " (CLOSE-WAIT sockets held a file descriptor each until then)",
        upstream="hypercorn 0.18.0 asyncio/tcp_server.py TCPServer._read_data ends on EOF but run() then waits"
        " for the idle task (keep_alive_timeout) in its task group; no upstream issue",
        test="tests/e2e/test_connection_hygiene.py::test_a_departed_client_is_released_at_once",
    ),
)
