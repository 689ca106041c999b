"""The hook events (docs/hooks in tusedge/server/hooks.py): one StrEnum, so a name is spelt in one place.
Settings validate ``--hook-events`` against it; the service, the finishing jobs and the reaper fire them."""

from __future__ import annotations

from enum import StrEnum


class HookEvent(StrEnum):
    PRE_CREATE = "pre-create"  # asked before an upload is created; its answer decides
    POST_CREATE = "post-create"
    POST_FINISH = "post-finish"  # complete: merged and verified
    POST_TERMINATE = "post-terminate"
    POST_EXPIRE = "post-expire"

    @property
    def decides(self) -> bool:
        """True for the one event whose answer decides (pre-create); the others are notifications,
        delivered from the outbox."""
        return self is HookEvent.PRE_CREATE
