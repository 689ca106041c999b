"""UploadRepository: every read and write of upload state, one short transaction per call.

It speaks SQLAlchemy Core on the ``uploads`` table rather than ORM sessions: each request makes a few of
these calls, and the ORM's unit of work and identity map cost more CPU than the statements themselves
(measured: ORM sessions were a quarter of the event loop's time at 32 concurrent small uploads).

Each operation is a synchronous function of a ``Connection``, run whole in one place: on SQLite on the
process's state thread (tusedge.state.sqlite: one hop per operation instead of aiosqlite's hops per
statement), on PostgreSQL through asyncpg with ``run_sync``."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from enum import StrEnum
from typing import Any, TypedDict, TypeVar, Unpack, cast

from sqlalchemy import Connection, Row, Table, delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from tusedge.protocol.upload import ConcatKind, Failure, Status, UploadInfo
from tusedge.state import sqlite
from tusedge.state.database import sqlite_pragmas
from tusedge.state.models import UploadRow

T = TypeVar("T")

uploads: Table = cast(Table, UploadRow.__table__)
c = uploads.c

# UploadInfo field / update keyword -> column name, where they differ.
_COLUMN = {"offset": "upload_offset", "metadata": "metadata"}


def _info(row: Row[Any]) -> UploadInfo:
    m = row._mapping
    return UploadInfo(
        id=m["id"],
        offset=m["upload_offset"],
        length=m["length"],
        metadata=m["metadata"],
        status=Status(m["status"]),
        created_at=m["created_at"],
        expires_at=m["expires_at"],
        concat=ConcatKind(m["concat"]) if m["concat"] else None,
        parts=tuple(m["parts"].split()) if m["parts"] else (),
        error=m["error"],
        failure=Failure(m["failure"]) if m["failure"] else None,
    )


class UploadChanges(TypedDict, total=False):
    """The fields of an upload that ``update`` and ``claim`` may set (id, metadata, concat, parts and
    created_at never change)."""

    offset: int
    length: int | None
    status: Status
    expires_at: datetime | None
    error: str | None
    failure: Failure | None


def _info_of_row(row: tuple[Any, ...]) -> UploadInfo:
    """An upload from the prepared SELECT of tusedge.state.sqlite (datetimes as stored text)."""
    upload_id, offset, length, metadata, status, concat, parts, created_at, expires_at, error, failure = row
    created = sqlite.from_text(created_at)
    assert created is not None
    return UploadInfo(
        id=upload_id,
        offset=offset,
        length=length,
        metadata=metadata,
        status=Status(status),
        created_at=created,
        expires_at=sqlite.from_text(expires_at),
        concat=ConcatKind(concat) if concat else None,
        parts=tuple(parts.split()) if parts else (),
        error=error,
        failure=Failure(failure) if failure else None,
    )


def _columns(values: UploadChanges) -> dict[str, Any]:
    return {_COLUMN.get(k, k): (v.value if isinstance(v, StrEnum) else v) for k, v in values.items()}


class UploadRepository:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self._is_sqlite = engine.dialect.name == "sqlite"
        self._thread: sqlite.SQLiteThread | None = None

    def _sqlite(self) -> sqlite.SQLiteThread:
        thread = self._thread
        if thread is None or thread.closed:  # (a disposed engine may be used again)
            thread = self._thread = sqlite.thread_for(self.engine, sqlite_pragmas)
        return thread

    async def read(self, fn: Callable[[Connection], T]) -> T:
        """Run ``fn(connection)`` for reading (also for other stores that share the database: the hook
        outbox)."""
        if self._is_sqlite:
            return await self._sqlite().read(fn)
        async with self.engine.connect() as conn:
            return await conn.run_sync(fn)

    async def write(self, fn: Callable[[Connection], T]) -> T:
        """Run ``fn(connection)`` in one write transaction: committed when it returns, rolled back when it
        raises. On SQLite this process's writes queue on one thread (one writer at a time)."""
        if self._is_sqlite:
            return await self._sqlite().write(fn)
        async with self.engine.begin() as conn:
            return await conn.run_sync(fn)

    async def create(self, info: UploadInfo) -> None:
        row = {
            "id": info.id,
            "upload_offset": info.offset,
            "length": info.length,
            "metadata": info.metadata,
            "status": info.status.value,
            "concat": info.concat.value if info.concat else None,
            "parts": " ".join(info.parts) or None,
            "created_at": info.created_at,
            "updated_at": info.created_at,
            "expires_at": info.expires_at,
            "error": info.error,
            "failure": info.failure.value if info.failure else None,
        }
        if self._is_sqlite:  # the prepared statement, in _INSERT's column order
            created = sqlite.to_text(info.created_at)
            stored = list(row.values())
            values = (*stored[:7], created, created, sqlite.to_text(info.expires_at), *stored[10:])
            await self._sqlite().write(lambda conn: sqlite.insert_row(conn, values))
            return
        query = insert(uploads).values(row)
        await self.write(lambda conn: conn.execute(query))

    async def get(self, upload_id: str) -> UploadInfo | None:
        if self._is_sqlite:
            found = await self._sqlite().read(lambda conn: sqlite.get_row(conn, upload_id))
            return None if found is None else _info_of_row(found)
        query = select(uploads).where(c.id == upload_id)

        def work(conn: Connection) -> UploadInfo | None:
            row = conn.execute(query).first()
            return None if row is None else _info(row)

        return await self.read(work)

    async def get_many(self, upload_ids: list[str]) -> dict[str, UploadInfo]:
        query = select(uploads).where(c.id.in_(upload_ids))

        def work(conn: Connection) -> dict[str, UploadInfo]:
            return {row._mapping["id"]: _info(row) for row in conn.execute(query)}

        return await self.read(work)

    async def update(self, upload_id: str, now: datetime, **values: Unpack[UploadChanges]) -> None:
        """Set fields of one upload (``offset``, ``length``, ``status``, ``expires_at``, ``error``,
        ``failure``) in one commit."""
        if self._is_sqlite:
            columns = {"updated_at": sqlite.to_text(now)}
            for name, value in _columns(values).items():
                columns[name] = sqlite.to_text(value) if isinstance(value, datetime) else value
            await self._sqlite().write(lambda conn: sqlite.update_row(conn, upload_id, columns))
            return
        query = update(uploads).where(c.id == upload_id).values(updated_at=now, **_columns(values))
        await self.write(lambda conn: conn.execute(query))

    async def delete(self, upload_id: str) -> None:
        """Forget one upload at once, leaving no tombstone (an upload whose creation failed)."""
        query = delete(uploads).where(c.id == upload_id)
        await self.write(lambda conn: conn.execute(query))

    async def claim(self, upload_id: str, now: datetime, expected: Status, **values: Unpack[UploadChanges]) -> bool:
        """Update one upload only if it is still in ``expected`` status; True if this call won."""
        query = (
            update(uploads)
            .where(c.id == upload_id, c.status == expected.value)
            .values(updated_at=now, **_columns(values))
        )
        return await self.write(lambda conn: conn.execute(query).rowcount == 1)

    async def claim_and_retire(
        self, upload_id: str, now: datetime, expected: Status, retire: Sequence[str], **values: Unpack[UploadChanges]
    ) -> bool:
        """:meth:`claim`, and when it wins mark the uploads ``retire`` TERMINATED in the same transaction:
        a final upload becomes COMPLETE and its partial uploads tombstones at once, so no crash can leave
        them live beside it (their files are removed after the commit, or by the tombstone purge)."""
        query = (
            update(uploads)
            .where(c.id == upload_id, c.status == expected.value)
            .values(updated_at=now, **_columns(values))
        )
        retiring = (
            update(uploads)
            .where(c.id.in_(list(retire)))
            .values(updated_at=now, status=Status.TERMINATED.value, expires_at=None)
        )

        def work(conn: Connection) -> bool:
            if conn.execute(query).rowcount != 1:
                return False
            if retire:
                conn.execute(retiring)
            return True

        return await self.write(work)

    async def listing(
        self, statuses: Sequence[Status], updated_before: datetime | None = None, limit: int = 1000
    ) -> list[tuple[UploadInfo, datetime]]:
        """Uploads in ``statuses`` (last changed before ``updated_before``), each with when it last changed,
        least recently changed first (``tusedge uploads list``)."""
        query = select(uploads).where(c.status.in_([s.value for s in statuses]))
        if updated_before is not None:
            query = query.where(c.updated_at < updated_before)
        query = query.order_by(c.updated_at, c.id).limit(limit)
        return await self.read(lambda conn: [(_info(row), row._mapping["updated_at"]) for row in conn.execute(query)])

    async def updated_at(self, upload_id: str) -> datetime | None:
        query = select(c.updated_at).where(c.id == upload_id)
        return await self.read(lambda conn: conn.execute(query).scalar())

    async def with_status(self, status: Status) -> list[UploadInfo]:
        query = select(uploads).where(c.status == status.value)
        return await self.read(lambda conn: [_info(row) for row in conn.execute(query)])

    async def expired(self, now: datetime, limit: int = 100) -> list[str]:
        """Ids of active uploads whose expiry has passed."""
        query = select(c.id).where(c.status == Status.ACTIVE.value, c.expires_at <= now).limit(limit)
        return await self.read(lambda conn: list(conn.execute(query).scalars()))

    async def finals_waiting_for(self, part_id: str) -> list[UploadInfo]:
        """Unfinished final uploads that name ``part_id`` (concatenation-unfinished)."""
        query = select(uploads).where(
            c.concat == ConcatKind.FINAL.value, c.status == Status.ACTIVE.value, c.parts.contains(part_id)
        )
        return await self.read(lambda conn: [_info(row) for row in conn.execute(query)])

    async def tombstones(self, before: datetime, limit: int = 1000) -> list[str]:
        """Ids of terminated and expired uploads last touched before ``before``."""
        query = select(c.id).where(_tombstone, c.updated_at < before).limit(limit)
        return await self.read(lambda conn: list(conn.execute(query).scalars()))

    async def purge_tombstones(self, before: datetime) -> int:
        """Forget terminated and expired uploads last touched before ``before``; they then answer 404."""
        query = delete(uploads).where(_tombstone, c.updated_at < before)
        return await self.write(lambda conn: conn.execute(query).rowcount)


_tombstone = c.status.in_([Status.TERMINATED.value, Status.EXPIRED.value])
