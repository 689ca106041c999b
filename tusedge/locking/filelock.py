"""A cross-process locker for the workers of one node: ``flock`` on ``<locks>/<id>.lock``.

A request that finds the lock taken drops a ``<id>.release`` file beside it: the holder polls for that
file and, if its client has gone quiet, stops reading, commits what it has and releases (tusd's
filelocker does the same with a ``.stop`` file). flock locks die with their process, so a killed worker
never leaves a lock behind.
"""

from __future__ import annotations

import errno
import fcntl
import os
import time
from dataclasses import dataclass
from pathlib import Path

import anyio

from tusedge.errors import UploadLocked
from tusedge.oserrors import run_storage
from tusedge.threads import run_blocking

POLL_S = 0.05


def _try_lock(path: str) -> int | None:
    """Open and lock ``path`` without waiting; None when another holder has it. We re-check the inode
    after locking: if the file was unlinked and re-created meanwhile, our lock is on a dead inode."""
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o640)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno in (errno.EAGAIN, errno.EACCES):
                return None
            raise
        try:
            if os.fstat(fd).st_ino == os.stat(path).st_ino:
                return fd
        except FileNotFoundError:
            pass
        os.close(fd)


def _touch(path: str) -> None:
    with open(path, "a"):
        pass


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


@dataclass(slots=True)
class FileLock:
    upload_id: str
    fd: int | None
    release_path: str

    async def release_requested(self) -> bool:
        return await run_blocking(os.path.exists, self.release_path)

    async def release(self) -> None:
        if self.fd is not None:
            fd, self.fd = self.fd, None
            # Closing the descriptor drops the flock. On the loop: closing a lock file (local, never
            # written) does no I/O, and a worker-thread round trip per PATCH costs more than the call.
            os.close(fd)


class FileLocker:
    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def setup(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)

    async def start(self) -> None:
        self.setup()

    async def close(self) -> None:
        """Nothing to let go: each lock is closed by its holder."""

    def _paths(self, upload_id: str) -> tuple[str, str]:
        base = str(self.directory / upload_id)
        return base + ".lock", base + ".release"

    async def acquire(self, upload_id: str, timeout_s: float, *, ask_release: bool = True) -> FileLock:
        lock_path, release_path = self._paths(upload_id)
        deadline = time.monotonic() + timeout_s
        asked = False
        while True:
            fd = await run_storage(upload_id, _try_lock, lock_path)
            if fd is not None:
                if asked:
                    await run_blocking(_unlink, release_path)
                return FileLock(upload_id, fd, release_path)
            if ask_release and not asked:
                await run_storage(upload_id, _touch, release_path)
                asked = True
            if time.monotonic() >= deadline:
                if asked:
                    await run_blocking(_unlink, release_path)
                raise UploadLocked()
            await anyio.sleep(POLL_S)

    async def forget(self, upload_id: str) -> None:
        for path in self._paths(upload_id):
            await run_storage(upload_id, _unlink, path)
