"""UploadRepository: every read and write of upload state, one short session (transaction) per call."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from tusedge.protocol.upload import ConcatKind, Status, UploadInfo
from tusedge.state.models import UploadRow


def _info(row: UploadRow) -> UploadInfo:
    return UploadInfo(
        id=row.id,
        offset=row.offset,
        length=row.length,
        metadata=row.meta,
        status=Status(row.status),
        created_at=row.created_at,
        expires_at=row.expires_at,
        concat=ConcatKind(row.concat) if row.concat else None,
        parts=tuple(row.parts.split()) if row.parts else (),
        error=row.error,
    )


class UploadRepository:
    def __init__(self, engine: AsyncEngine) -> None:
        self.sessions = async_sessionmaker(engine, expire_on_commit=False)

    async def create(self, info: UploadInfo) -> None:
        row = UploadRow(
            id=info.id,
            offset=info.offset,
            length=info.length,
            meta=info.metadata,
            status=info.status.value,
            concat=info.concat.value if info.concat else None,
            parts=" ".join(info.parts) or None,
            created_at=info.created_at,
            updated_at=info.created_at,
            expires_at=info.expires_at,
        )
        async with self.sessions.begin() as session:
            session.add(row)

    async def get(self, upload_id: str) -> UploadInfo | None:
        async with self.sessions() as session:
            row = await session.get(UploadRow, upload_id)
            return None if row is None else _info(row)

    async def get_many(self, upload_ids: list[str]) -> dict[str, UploadInfo]:
        async with self.sessions() as session:
            rows = (await session.scalars(select(UploadRow).where(UploadRow.id.in_(upload_ids)))).all()
            return {row.id: _info(row) for row in rows}

    async def update(self, upload_id: str, now: datetime, **values: Any) -> None:
        """Set columns of one upload (``offset``, ``length``, ``status``, ``expires_at``) in one commit."""
        if "status" in values and isinstance(values["status"], Status):
            values["status"] = values["status"].value
        async with self.sessions.begin() as session:
            await session.execute(update(UploadRow).where(UploadRow.id == upload_id).values(updated_at=now, **values))

    async def claim(self, upload_id: str, now: datetime, expected: Status, **values: Any) -> bool:
        """Update one upload only if it is still in ``expected`` status; True if this call won."""
        if "status" in values and isinstance(values["status"], Status):
            values["status"] = values["status"].value
        query = (
            update(UploadRow)
            .where(UploadRow.id == upload_id, UploadRow.status == expected.value)
            .values(updated_at=now, **values)
        )
        async with self.sessions.begin() as session:
            result = await session.execute(query)
            return bool(getattr(result, "rowcount", 0))

    async def with_status(self, status: Status) -> list[UploadInfo]:
        async with self.sessions() as session:
            rows = (await session.scalars(select(UploadRow).where(UploadRow.status == status.value))).all()
            return [_info(row) for row in rows]

    async def expired(self, now: datetime, limit: int = 100) -> list[str]:
        """Ids of active uploads whose expiry has passed."""
        query = (
            select(UploadRow.id)
            .where(UploadRow.status == Status.ACTIVE.value, UploadRow.expires_at <= now)
            .limit(limit)
        )
        async with self.sessions() as session:
            return list((await session.scalars(query)).all())

    async def finals_waiting_for(self, part_id: str) -> list[UploadInfo]:
        """Unfinished final uploads that name ``part_id`` (concatenation-unfinished)."""
        query = select(UploadRow).where(
            UploadRow.concat == ConcatKind.FINAL.value,
            UploadRow.status == Status.ACTIVE.value,
            UploadRow.parts.contains(part_id),
        )
        async with self.sessions() as session:
            return [_info(row) for row in (await session.scalars(query)).all()]

    async def tombstones(self, before: datetime, limit: int = 1000) -> list[str]:
        """Ids of terminated and expired uploads last touched before ``before``."""
        query = (
            select(UploadRow.id)
            .where(UploadRow.status.in_([Status.TERMINATED.value, Status.EXPIRED.value]), UploadRow.updated_at < before)
            .limit(limit)
        )
        async with self.sessions() as session:
            return list((await session.scalars(query)).all())

    async def purge_tombstones(self, before: datetime) -> int:
        """Forget terminated and expired uploads last touched before ``before``; they then answer 404."""
        query = delete(UploadRow).where(
            UploadRow.status.in_([Status.TERMINATED.value, Status.EXPIRED.value]), UploadRow.updated_at < before
        )
        async with self.sessions.begin() as session:
            result = await session.execute(query)
            return int(getattr(result, "rowcount", 0) or 0)
