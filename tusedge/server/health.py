"""``/healthz`` and ``/readyz`` for load balancers and orchestrators.

``/healthz`` answers 200 whenever the process's event loop does (liveness: restart me if this fails).
``/readyz`` answers 200 only when this node can take uploads now (readiness: send me traffic):

- the state database answers a ``SELECT 1`` within ``CHECK_TIMEOUT_S``;
- the uploads folder takes a new file (created, written, removed: a read-only or broken mount fails);
- it has more than ``ready_min_free_bytes`` free for unprivileged writers;
- the process is not draining (SIGTERM, :mod:`tusedge.server.drain`).

Both answer JSON, with one entry per check, and are never rate-limited: the per-client limits apply to the
tus endpoints only, and a probe refused with 429 would take a healthy node out of rotation. They are
left out of the access log unless --access-log-probes.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from tusedge.server.drain import Drain

log = logging.getLogger("tusedge")

CHECK_TIMEOUT_S = 2.0
NO_STORE = {"Cache-Control": "no-store"}


@dataclass(frozen=True, slots=True)
class Readiness:
    ready: bool
    checks: dict[str, str | int | bool]


def _probe_folder(directory: Path) -> int:
    """Create, write and remove a file in ``directory``; return the bytes free for unprivileged writers."""
    probe = directory / f".readyz-{os.getpid()}-{secrets.token_hex(4)}"
    fd = os.open(probe, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    try:
        os.write(fd, b"ready?\n")
    finally:
        os.close(fd)
        probe.unlink()
    st = os.statvfs(directory)
    return st.f_bavail * st.f_frsize


async def ping_engine(engine: AsyncEngine) -> None:
    """The state database answers a query (a fresh or pooled connection, ``SELECT 1``)."""
    async with engine.connect() as conn:
        await conn.execute(text("SELECT 1"))


class Health:
    """``ping``: raises unless the state database answers (e.g. :func:`ping_engine`)."""

    def __init__(self, ping: Callable[[], Awaitable[None]], uploads_dir: Path, min_free_bytes: int,
                 drain: Drain) -> None:  # fmt: skip
        self.ping = ping
        self.uploads_dir = uploads_dir
        self.min_free_bytes = min_free_bytes
        self.drain = drain
        self._was_ready: bool | None = None

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/healthz", self.healthz, methods=["GET", "HEAD"]),
            Route("/readyz", self.readyz, methods=["GET", "HEAD"]),
        ]

    async def healthz(self, request: Request) -> Response:
        return JSONResponse({"alive": True}, headers=NO_STORE)

    async def readyz(self, request: Request) -> Response:
        state = await self.readiness()
        return JSONResponse({"ready": state.ready, "checks": state.checks}, status_code=200 if state.ready else 503,
                            headers=NO_STORE)  # fmt: skip

    async def readiness(self) -> Readiness:
        checks: dict[str, str | int | bool] = {}
        ready = True
        detail: Exception | None = None
        try:
            async with asyncio.timeout(CHECK_TIMEOUT_S):
                await self.ping()
            checks["database"] = "ok"
        except Exception as exc:  # any failure to answer means: not ready
            checks["database"] = f"failed: {type(exc).__name__}"
            ready = False
            detail = exc
        try:
            async with asyncio.timeout(CHECK_TIMEOUT_S):
                free = await asyncio.to_thread(_probe_folder, self.uploads_dir)
            checks["storage"] = "ok"
            checks["free_bytes"] = free
            if free <= self.min_free_bytes:
                checks["storage"] = f"low: {free} bytes free, at most ready_min_free_bytes ({self.min_free_bytes})"
                ready = False
        except Exception as exc:  # not writable, gone, or hanging
            checks["storage"] = f"failed: {type(exc).__name__}: {getattr(exc, 'strerror', None) or exc}"
            ready = False
            detail = exc
        checks["draining"] = self.drain.draining
        if self.drain.draining:
            ready = False
        if ready != self._was_ready:  # logged on changes only: probes come every few seconds
            if ready:
                log.info("ready: %s", checks)
            else:
                log.warning("not ready: %s", checks, exc_info=detail)
            self._was_ready = ready
        return Readiness(ready, checks)
