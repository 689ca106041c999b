"""The hook outbox: post-* events stored in the state database until the hook has taken them, so a
restart or a hook that is down for a while loses none. Several processes and nodes may deliver from it:
an event is claimed for a lease before it is sent (at least once; rarely twice, if a deliverer dies
after sending and before deleting)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import cast

from sqlalchemy import Connection, Table, delete, insert, select, update

from tusedge.state.models import HookEventRow
from tusedge.state.repository import UploadRepository

events: Table = cast(Table, HookEventRow.__table__)
e = events.c


@dataclass(frozen=True)
class PendingEvent:
    id: int
    event: str
    attempts: int
    created_at: datetime


class EventOutbox:
    def __init__(self, repo: UploadRepository) -> None:
        self.repo = repo

    async def add(self, event: str, now: datetime) -> None:
        query = insert(events).values(event=event, created_at=now, due_at=now, attempts=0)
        await self.repo.write(lambda conn: conn.execute(query))

    async def claim_due(self, now: datetime, lease: timedelta, limit: int = 50) -> list[PendingEvent]:
        """Events due now, each claimed for ``lease`` (others skip it meanwhile)."""
        due = select(events).where(e.due_at <= now).order_by(e.id).limit(limit)

        def work(conn: Connection) -> list[PendingEvent]:
            claimed = []
            for row in conn.execute(due).all():
                query = update(events).where(e.id == row.id, e.due_at == row.due_at).values(due_at=now + lease)
                if conn.execute(query).rowcount == 1:
                    claimed.append(PendingEvent(row.id, row.event, row.attempts, row.created_at))
            return claimed

        return await self.repo.write(work)

    async def delivered(self, event_id: int) -> None:
        query = delete(events).where(e.id == event_id)
        await self.repo.write(lambda conn: conn.execute(query))

    async def retry_at(self, event_id: int, due: datetime, attempts: int) -> None:
        query = update(events).where(e.id == event_id).values(due_at=due, attempts=attempts)
        await self.repo.write(lambda conn: conn.execute(query))

    async def pending(self) -> int:
        return await self.repo.read(lambda conn: len(conn.execute(select(e.id)).all()))
