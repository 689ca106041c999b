"""Per-client connection and upload caps, and the file descriptor reserve.

Hypercorn tells the app nothing of connections, so ``hypercorn_fixes.tcp`` registers each TCP connection in
the :class:`ConnectionTable` the app's lifespan hands to Hypercorn (``STATE_KEY`` in the lifespan state) and
puts the connection's record into every request's ``scope["state"]`` (``CONNECTION_KEY``).
:class:`ClientCaps` then answers each request of a connection that is over a limit, through the one error
table, and closes it:

* ``--client-max-connections``: a client address's connections past the cap get 429 (the address is the
  peer's, or with ``--trust-proxy`` the forwarded one of the connection's latest request; behind a proxy a
  connection is counted from its first request).
* the file descriptor reserve: a connection accepted while fewer than ``fd_reserve()`` descriptors are free
  under RLIMIT_NOFILE gets 503, so the requests under way keep the descriptors they need (upload files,
  locks, the database) and new clients learn why instead of waiting in the listen queue.
* ``--client-max-uploads``: request bodies (PATCH, POST with a body) in progress per client address past the
  cap get 429, before they take a lock.

Counts are per server process, like the other per-client limits.
"""

from __future__ import annotations

import logging
import resource
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send

from tusedge.errors import DescriptorsRunningOut, TooManyConnections, TooManyUploads, TusError
from tusedge.server.middleware import HttpMiddleware
from tusedge.server.responses import answer_error

log = logging.getLogger("tusedge")

STATE_KEY = "tusedge.connections"
CONNECTION_KEY = "tusedge.connection"
RESERVE_MIN = 32
RESERVE_FRACTION = 0.1


def fd_reserve(soft_limit: int) -> int:
    """File descriptors kept free for the requests under way: a tenth of the limit, at least 32."""
    return max(RESERVE_MIN, int(soft_limit * RESERVE_FRACTION))


def raise_nofile_limit() -> tuple[int, int]:
    """Raise this process's soft RLIMIT_NOFILE to its hard limit (inherited by worker processes); returns
    (before, after)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
    if soft != resource.RLIM_INFINITY and target > soft:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError):
            return soft, soft
        return soft, target
    return soft, soft


@dataclass(eq=False, slots=True)
class Connection:
    fd: int
    client: str | None  # the address it is counted under (None: not yet, behind a proxy)
    refusal: TusError | None = None  # why every request on it is answered with an error

    def __deepcopy__(self, memo: dict[int, Any]) -> Connection:  # scopes are deep-copied by ProxyFix
        return self


@dataclass(eq=False)
class ConnectionTable:
    max_per_client: int
    by_forwarded_address: bool  # --trust-proxy: count connections by the forwarded address
    counts: Counter[str] = field(default_factory=Counter)
    short_of_descriptors: bool = False  # logged once each time the reserve is reached

    def __deepcopy__(self, memo: dict[int, Any]) -> ConnectionTable:
        return self

    def open(self, peer: str, fd: int) -> Connection:
        connection = Connection(fd, None)
        soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        # The kernel hands out the lowest free descriptor, so this number is at most how many are in use.
        short = soft != resource.RLIM_INFINITY and fd >= soft - fd_reserve(soft)
        if short != self.short_of_descriptors:
            self.short_of_descriptors = short
            if short:
                log.warning("file descriptors run short (descriptor %d of RLIMIT_NOFILE %d, reserve %d): new"
                            " connections are answered 503 until some close", fd, soft, fd_reserve(soft))  # fmt: skip
            else:
                log.warning("file descriptors are available again: connections are served")
        if short:
            connection.refusal = DescriptorsRunningOut(
                f"the server is running out of file descriptors ({fd} of {soft} in use); retry shortly",
                headers={"Retry-After": "5"},
            )
        if not self.by_forwarded_address:
            self.claim(connection, peer)
        return connection

    def claim(self, connection: Connection, client: str) -> None:
        """Count ``connection`` under ``client`` (again, if it moved); past the cap it is refused."""
        if connection.client == client:
            return
        if connection.client is not None:
            self.counts[connection.client] -= 1
            if self.counts[connection.client] <= 0:
                del self.counts[connection.client]
        connection.client = client
        self.counts[client] += 1
        count = self.counts[client]
        if self.max_per_client and count > self.max_per_client and connection.refusal is None:
            connection.refusal = TooManyConnections(
                f"this client address has {count} connections open; the limit is {self.max_per_client}"
                " (--client-max-connections)",
                headers={"Retry-After": "1"},
            )

    def close(self, connection: Connection) -> None:
        if connection.client is not None:
            self.counts[connection.client] -= 1
            if self.counts[connection.client] <= 0:
                del self.counts[connection.client]


_BODY_METHODS = {"PATCH", "POST"}


def _has_body(scope: Scope) -> bool:
    if scope["method"] not in _BODY_METHODS:
        return False
    for name, value in scope["headers"]:
        if name == b"transfer-encoding" or (name == b"content-length" and value.strip() not in (b"0", b"")):
            return True
    return False


class ClientCaps(HttpMiddleware):
    """ASGI middleware: the per-connection refusals above, and ``max_uploads`` bodies per client address."""

    def __init__(self, app: ASGIApp, table: ConnectionTable, max_uploads: int) -> None:
        super().__init__(app)
        self.table = table
        self.max_uploads = max_uploads
        self.uploads: Counter[str] = Counter()

    async def http(self, scope: Scope, receive: Receive, send: Send) -> None:
        client = scope["client"][0] if scope.get("client") else "?"
        state = scope.get("state") or {}
        connection = state.get(CONNECTION_KEY)
        error: TusError | None = None
        if isinstance(connection, Connection):
            if self.table.by_forwarded_address:
                self.table.claim(connection, client)
            error = connection.refusal
        counted = error is None and self.max_uploads > 0 and _has_body(scope)
        if counted and self.uploads[client] >= self.max_uploads:
            error = TooManyUploads(
                f"this client address has {self.uploads[client]} uploads in progress; the limit is"
                f" {self.max_uploads} (--client-max-uploads)",
                headers={"Retry-After": "1"},
            )
            counted = False
        if error is not None:
            await answer_error(error, scope, receive, send)
            return
        if not counted:
            await self.app(scope, receive, send)
            return
        self.uploads[client] += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.uploads[client] -= 1
            if self.uploads[client] <= 0:
                del self.uploads[client]
