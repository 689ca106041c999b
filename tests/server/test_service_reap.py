"""The reaper's round (tusedge.server.reaper) with a real SQLite file, real upload files and real locks;
only the clock is ours."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tusedge.config import Settings
from tusedge.protocol.headers import DeclaredLength
from tusedge.protocol.requests import CreateUpload
from tusedge.protocol.upload import Status
from tusedge.server.app import running
from tusedge.server.components import build_components
from tusedge.server.reaper import reap
from tusedge.server.service import TusService


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 1, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
async def service(tmp_path: Path) -> AsyncIterator[tuple[TusService, Clock]]:
    settings = Settings(data_dir=tmp_path, expiry_s=3600)
    clock = Clock()
    service = TusService(build_components(settings, clock))
    async with running(service):
        yield service, clock


async def reaped(tus: TusService) -> int:
    return await reap(tus.components, tus.finisher)


def creation(length: int) -> CreateUpload:
    return CreateUpload(DeclaredLength(length), None, None, False, None, None)


async def test_reap_removes_expired_upload_file_and_leaves_tombstone(service: tuple[TusService, Clock]) -> None:
    tus, clock = service
    info = await tus.create(creation(10), None)
    clock.now += timedelta(hours=2)
    assert await reaped(tus) == 1
    assert not (tus.settings.uploads_dir / info.id).exists()
    tombstone = await tus.repo.get(info.id)
    assert tombstone is not None and tombstone.status is Status.EXPIRED


async def test_reap_deletes_leftover_file_of_old_tombstone_before_forgetting_it(
    service: tuple[TusService, Clock],
) -> None:
    """A crash between a tombstone's commit and its file's removal leaves the file; the reaper deletes it
    before it forgets the tombstone (after 7 days), so it does not stay for good."""
    tus, clock = service
    info = await tus.create(creation(10), None)
    await tus.repo.update(info.id, clock(), status=Status.TERMINATED)  # as if killed before the unlink
    assert (tus.settings.uploads_dir / info.id).exists()
    clock.now += timedelta(days=6)
    await reaped(tus)
    assert (tus.settings.uploads_dir / info.id).exists(), "a young tombstone is kept (410) with nothing swept yet"
    clock.now += timedelta(days=2)
    await reaped(tus)
    assert not (tus.settings.uploads_dir / info.id).exists()
    assert await tus.repo.get(info.id) is None
