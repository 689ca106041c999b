"""Locker contracts (after tusd's ``handler.Locker``): a lock can be asked to let go."""

from __future__ import annotations

from typing import Protocol


class Lock(Protocol):
    upload_id: str

    async def release_requested(self) -> bool:
        """True once another request has asked for this upload. The holder decides whether to give way
        (it does when its own connection looks dead)."""
        ...

    async def release(self) -> None:
        """Give the lock up. Idempotent."""
        ...


class Locker(Protocol):
    async def start(self) -> None:
        """Get ready (folders, connections); called once by the app's lifespan."""
        ...

    async def close(self) -> None:
        """Let go of what ``start`` took."""
        ...

    async def acquire(self, upload_id: str, timeout_s: float, *, ask_release: bool = True) -> Lock:
        """Take the upload's lock, asking the current holder to release it (unless ``ask_release`` is
        false), and waiting at most ``timeout_s``. Raises :class:`tusedge.errors.UploadLocked` when the
        holder keeps it."""
        ...

    async def forget(self, upload_id: str) -> None:
        """Remove what the locker keeps for an upload that no longer exists. Call it holding the lock."""
        ...
