"""The reaper: the background rounds of a node, one job each, started and stopped by the app's lifespan
(and run once by ``tusedge uploads gc``):

- :func:`expire`: active uploads past their expiry become EXPIRED tombstones (post-expire);
- the finishing jobs left FINISHING by a crash or a transient failure start again (``Finisher``);
- :func:`purge`: tombstones older than a week are forgotten (410 becomes 404), their files swept first.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import timedelta

from tusedge.errors import UploadLocked
from tusedge.events import HookEvent
from tusedge.protocol.upload import ConcatKind, Status
from tusedge.server import lifecycle
from tusedge.server.components import Components
from tusedge.server.finishing import Finisher
from tusedge.server.hooks import upload_fields

log = logging.getLogger("tusedge")


async def expire(c: Components, finisher: Finisher) -> int:
    """Retire expired unfinished uploads and their files (a final waiting for an expired part fails);
    return how many. Uploads in use are skipped until the next round."""
    removed = 0
    for upload_id in await c.repository.expired(c.clock()):
        try:
            lock = await c.locker.acquire(upload_id, 0, ask_release=False)
        except UploadLocked:
            continue
        gone = None
        try:
            info = await c.repository.get(upload_id)
            if info is not None and info.expired_at(c.clock()):
                await lifecycle.retire(c, upload_id, Status.EXPIRED)
                gone = info
                await c.hooks.notify(HookEvent.POST_EXPIRE, upload_fields(info, c.settings.base_path))
                removed += 1
        finally:
            await lock.release()
        if gone is not None and gone.concat is ConcatKind.PARTIAL:
            await finisher.part_gone(upload_id)
    if removed:
        log.info("removed %d expired upload(s)", removed)
    return removed


async def purge(c: Components) -> None:
    """Forget tombstones after a week. Their files go (again) first: a crash between a tombstone's commit
    and its file's removal (lifecycle.retire) would otherwise leave the file behind for good."""
    before = c.clock() - timedelta(days=lifecycle.TOMBSTONE_DAYS)
    for upload_id in await c.repository.tombstones(before):
        await c.store.remove(upload_id)
        await c.locker.forget(upload_id)
    await c.repository.purge_tombstones(before)


async def reap(c: Components, finisher: Finisher) -> int:
    """One round of every job, in order (``tusedge uploads gc``); return how many uploads expired."""
    removed = await expire(c, finisher)
    await finisher.resume_pending()
    await purge(c)
    return removed


async def run_reaper(c: Components, finisher: Finisher, interval_s: float) -> None:
    """A round every ``interval_s`` until cancelled. Each job is on its own: one that fails (e.g. a locked
    database) is logged and does not keep the others from their turn, nor the next round from coming."""
    jobs: tuple[tuple[str, Callable[[], Awaitable[object]]], ...] = (
        ("expiry", lambda: expire(c, finisher)),
        ("finishing resume", finisher.resume_pending),
        ("purge", lambda: purge(c)),
    )
    while True:
        for name, job in jobs:
            try:
                await job()
            except Exception:
                log.exception("reaper: the %s round failed", name)
        await asyncio.sleep(interval_s)
