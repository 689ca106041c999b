"""The hook outbox on both backends: events are claimed once per lease, come back when retried, and go
when delivered."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncEngine

from tusedge.state.outbox import EventOutbox
from tusedge.state.repository import UploadRepository

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
LEASE = timedelta(seconds=30)


async def test_an_event_is_claimed_once_per_lease_and_goes_when_delivered(engine: AsyncEngine) -> None:
    outbox = EventOutbox(UploadRepository(engine))
    await outbox.add('{"type": "post-finish"}', NOW)
    (first,) = await outbox.claim_due(NOW, LEASE)
    assert first.event == '{"type": "post-finish"}' and first.attempts == 0
    assert await outbox.claim_due(NOW, LEASE) == []  # another deliverer skips it during the lease
    assert len(await outbox.claim_due(NOW + LEASE, LEASE)) == 1  # a deliverer that died: the lease ran out
    await outbox.delivered(first.id)
    assert await outbox.pending() == 0


async def test_a_retried_event_comes_back_when_due_with_its_attempts(engine: AsyncEngine) -> None:
    outbox = EventOutbox(UploadRepository(engine))
    await outbox.add("{}", NOW)
    (item,) = await outbox.claim_due(NOW, LEASE)
    await outbox.retry_at(item.id, NOW + timedelta(seconds=8), item.attempts + 1)
    assert await outbox.claim_due(NOW + timedelta(seconds=7), LEASE) == []
    (again,) = await outbox.claim_due(NOW + timedelta(seconds=8), LEASE)
    assert again.id == item.id and again.attempts == 1 and again.created_at == NOW
