"""OSErrors of the file system, translated where they happen (the store, the lock files) into the typed
errors clients get; :func:`run_storage` runs a blocking file call in a worker thread and translates.

Nothing past the store or the locker sees an OSError: each errno becomes the condition it means for the client (413 for
a file larger than the file system allows, 507 for a full disk, 503 for storage that may come back, 500
with the system's reason for the rest), so no storage failure ends as an untyped 500 with a traceback.
"""

from __future__ import annotations

import errno
from collections.abc import Callable
from typing import ParamSpec, TypeVar

from tusedge.errors import (
    FileTooLarge,
    InsufficientStorage,
    StorageFailed,
    StorageUnavailable,
    TusError,
    UploadNotFound,
)
from tusedge.threads import run_blocking

P = ParamSpec("P")
T = TypeVar("T")

_FULL = {errno.ENOSPC, errno.EDQUOT}
# Conditions an operator can clear (remount read-write, raise limits) or that pass by themselves.
_UNAVAILABLE = {
    errno.EROFS: "the server's storage is read-only",
    errno.EMFILE: "the server has run out of file descriptors",
    errno.ENFILE: "the system has run out of file descriptors",
    errno.ENOMEM: "the server is out of memory",
    errno.EAGAIN: "the server's storage is busy",
    errno.EBUSY: "the server's storage is busy",
    errno.ETIMEDOUT: "the server's storage timed out",
    errno.ESTALE: "the server's storage was remounted",
}


def storage_error(exc: OSError, upload_id: str) -> TusError:
    """The typed error for a failed file operation on the upload ``upload_id``."""
    if isinstance(exc, FileNotFoundError):
        return UploadNotFound(f"the data of upload {upload_id} is missing")
    number = exc.errno
    if number in _FULL:
        return InsufficientStorage("the server's disk is full")
    if number == errno.EFBIG:
        return FileTooLarge()
    if number in _UNAVAILABLE:
        return StorageUnavailable(f"{_UNAVAILABLE[number]}; retry later", headers={"Retry-After": "10"})
    reason = exc.strerror or type(exc).__name__
    return StorageFailed(f"the server could not read or write the upload's data: {reason}")


async def run_storage(upload_id: str, func: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """``run_blocking``, with an OSError translated into the typed error a client gets."""
    try:
        return await run_blocking(func, *args, **kwargs)
    except OSError as exc:
        raise storage_error(exc, upload_id) from exc
