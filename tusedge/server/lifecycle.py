"""The steps of an upload's life that more than one job takes: when it expires, how it becomes complete
(counted, post-finish) and how it is retired into a tombstone (counted, file and lock files gone). The
service (PATCH, DELETE), the finishing jobs and the reaper all take them from here, so each happens in
one way only."""

from __future__ import annotations

from datetime import datetime, timedelta

from tusedge.events import HookEvent
from tusedge.protocol.upload import Status, UploadInfo
from tusedge.server.components import Components
from tusedge.server.hooks import upload_fields

TOMBSTONE_DAYS = 7  # terminated/expired uploads answer 410 this long, then 404


def expiry(c: Components, now: datetime) -> datetime | None:
    """When an upload touched at ``now`` expires if it is not touched again (None: never)."""
    return now + timedelta(seconds=c.settings.expiry_s) if c.settings.expiry_s > 0 else None


async def completed(c: Components, info: UploadInfo) -> None:
    """``info`` has just been committed COMPLETE (all bytes in, merged and verified)."""
    c.metrics.uploads_completed.inc()
    await c.hooks.notify(HookEvent.POST_FINISH, upload_fields(info, c.settings.base_path))


async def retire(c: Components, upload_id: str, tombstone: Status) -> None:
    """Turn an upload into a tombstone (TERMINATED or EXPIRED) and remove its file and lock files. The
    tombstone is committed first: a crash before the file goes leaves it to the tombstone purge."""
    await c.repository.update(upload_id, c.clock(), status=tombstone, expires_at=None)
    c.metrics.uploads_removed.labels(tombstone.value.lower()).inc()
    await c.store.remove(upload_id)
    await c.locker.forget(upload_id)
