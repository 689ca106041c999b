"""A PATCH's lock, taken first when it is free: the upload is then read once, under the lock, instead of
once before it (to refuse a bound-to-fail request without asking the holder to give way) and again under it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from tusedge.errors import UploadGone, UploadLocked, UploadNotFound
from tusedge.ids import is_upload_id
from tusedge.locking.base import Lock, Locker
from tusedge.protocol.upload import UploadInfo


async def lock_if_free(
    locker: Locker, upload_id: str, get: Callable[[str], Awaitable[UploadInfo]]
) -> tuple[Lock, UploadInfo] | None:
    """The upload's lock and its record read under it (``get``) when nobody holds the lock (taken without
    asking anyone to give way), else None. The lock files of an id without a live upload are removed
    again: a 404 or 410 leaves nothing behind."""
    if not is_upload_id(upload_id):
        raise UploadNotFound()
    try:
        lock = await locker.acquire(upload_id, 0, ask_release=False)
    except UploadLocked:
        return None
    try:
        return lock, await get(upload_id)
    except (UploadNotFound, UploadGone):
        await locker.forget(upload_id)
        await lock.release()
        raise
    except BaseException:
        await lock.release()
        raise
