"""The expiry task: started and stopped by the app's lifespan."""

from __future__ import annotations

import asyncio
import logging

from tusedge.server.service import TusService

log = logging.getLogger("tusedge")


async def run_reaper(service: TusService, interval_s: float) -> None:
    while True:
        try:
            await service.reap()
        except Exception:  # the reaper must outlive a bad round (e.g. a locked database)
            log.exception("expiry round failed")
        await asyncio.sleep(interval_s)
