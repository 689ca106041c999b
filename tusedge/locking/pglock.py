"""A locker for several tusedge nodes sharing PostgreSQL: session-level advisory locks, and LISTEN/NOTIFY
to ask a holder on another node to let go.

Each held lock keeps one connection of a pool, since an advisory lock belongs to the session that took
it: a node writes to at most ``max_connections`` uploads at once, and a request beyond that gets 503
(size PostgreSQL's ``max_connections`` for nodes x this, docs/multi-node.md). A node that dies loses
its connections and PostgreSQL drops its locks with them, so a killed node never leaves a lock behind
(as flock does within one node). A request that finds the lock taken sends a
NOTIFY on the upload's channel every poll while it waits; the holder LISTENs on that channel and, when its
own client has gone quiet, commits what it has and releases — the same rule as the FileLocker's release
file.
"""

from __future__ import annotations

import hashlib
import time
from typing import TYPE_CHECKING, TypeAlias

import anyio
import asyncpg

if TYPE_CHECKING:  # generic only in asyncpg-stubs
    from asyncpg.pool import PoolConnectionProxy

from tusedge.errors import ServerBusy, UploadLocked

POLL_S = 0.05
# A release request counts while its sender keeps repeating it (every POLL_S); one older than this is
# from a request that gave up or got the lock.
REQUEST_FRESH_S = 1.0

# A connection of the locker's pool: the session that holds one advisory lock.
Connection: TypeAlias = "PoolConnectionProxy[asyncpg.Record]"


def asyncpg_dsn(sqlalchemy_url: str) -> str:
    """``postgresql+asyncpg://u@h/db`` (SQLAlchemy) -> ``postgresql://u@h/db`` (asyncpg)."""
    scheme, sep, rest = sqlalchemy_url.partition("://")
    return f"{scheme.split('+')[0]}{sep}{rest}"


def _lock_key(upload_id: str) -> int:
    """The advisory lock's 64-bit key: a hash of the id (ids are random, collisions only cost waiting)."""
    return int.from_bytes(hashlib.sha256(b"tusedge:" + upload_id.encode()).digest()[:8], "big", signed=True)


def _channel(upload_id: str) -> str:
    return "tusedge_release_" + hashlib.sha256(upload_id.encode()).hexdigest()[:32]


class PgLock:
    def __init__(self, upload_id: str, conn: Connection, pool: asyncpg.Pool[asyncpg.Record]) -> None:
        self.upload_id = upload_id
        self._conn: Connection | None = conn
        self._pool = pool
        self._asked_at = float("-inf")

    def _on_notify(self, *_: object) -> None:
        self._asked_at = time.monotonic()

    async def listen(self) -> None:
        assert self._conn is not None
        await self._conn.add_listener(_channel(self.upload_id), self._on_notify)

    async def release_requested(self) -> bool:
        return time.monotonic() - self._asked_at < REQUEST_FRESH_S

    async def release(self) -> None:
        if self._conn is None:
            return
        conn, self._conn = self._conn, None
        try:
            await conn.remove_listener(_channel(self.upload_id), self._on_notify)
            await conn.execute("SELECT pg_advisory_unlock($1)", _lock_key(self.upload_id))
        except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError):
            conn.terminate()  # ending the session drops its locks
        await self._pool.release(conn)


class PostgresLocker:
    def __init__(self, database_url: str, max_connections: int = 100) -> None:
        self.dsn = asyncpg_dsn(database_url)
        self.max_connections = max_connections
        self._pool: asyncpg.Pool[asyncpg.Record] | None = None

    async def start(self) -> None:
        self._pool = await asyncpg.create_pool(self.dsn, min_size=0, max_size=self.max_connections)

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()

    async def acquire(self, upload_id: str, timeout_s: float, *, ask_release: bool = True) -> PgLock:
        assert self._pool is not None, "PostgresLocker.start() was not awaited"
        deadline = time.monotonic() + timeout_s
        key, channel = _lock_key(upload_id), _channel(upload_id)
        try:
            conn = await self._pool.acquire(timeout=max(timeout_s, 1.0))
        except TimeoutError:
            raise ServerBusy(
                f"all {self.max_connections} lock connections of this node are in use (one per upload being written)",
                headers={"Retry-After": "1"},
            ) from None
        try:
            while True:
                if await conn.fetchval("SELECT pg_try_advisory_lock($1)", key):
                    lock = PgLock(upload_id, conn, self._pool)
                    await lock.listen()
                    return lock
                if ask_release:
                    await conn.execute("SELECT pg_notify($1, '')", channel)
                if time.monotonic() >= deadline:
                    raise UploadLocked()
                await anyio.sleep(POLL_S)
        except BaseException:
            await self._pool.release(conn)
            raise

    async def forget(self, upload_id: str) -> None:
        """Nothing is stored per upload: the lock is a key, the channel a name."""
