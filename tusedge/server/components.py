"""The wiring: one frozen :class:`Components` built once (by ``create_app`` or an admin command) and handed
to the service, the finishing jobs, the reaper and the endpoints. Nothing else builds a collaborator, and
no collaborator reaches for another through a third."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from tusedge.config import Settings
from tusedge.locking.base import Locker
from tusedge.locking.filelock import FileLocker
from tusedge.server.hooks import Hooks
from tusedge.server.metrics import Metrics
from tusedge.state.database import create_engine, create_schema
from tusedge.state.outbox import EventOutbox
from tusedge.state.repository import UploadRepository
from tusedge.storage.base import DataStore
from tusedge.storage.filestore import FileStore

Clock = Callable[[], datetime]


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class Components:
    settings: Settings
    store: DataStore  # the file store; its optional parts (Concater, ContentServer) by its capabilities
    repository: UploadRepository
    locker: Locker
    clock: Clock
    metrics: Metrics
    hooks: Hooks


def make_locker(settings: Settings) -> Locker:
    """Uploads are locked where their state is shared: in PostgreSQL when several nodes share it
    (advisory locks, docs/multi-node.md), else with flock in the data folder (the workers of one node)."""
    if settings.effective_database_url.startswith("postgresql"):
        from tusedge.locking.pglock import PostgresLocker

        return PostgresLocker(settings.effective_database_url)
    return FileLocker(settings.locks_dir)


def build_components(settings: Settings, clock: Clock = utcnow) -> Components:
    """Everything ``settings`` asks for (engine, store, locker, hooks and their outbox); nothing is started:
    see :func:`started`."""
    repository = UploadRepository(create_engine(settings.effective_database_url))
    return Components(
        settings=settings,
        store=FileStore(settings.uploads_dir, preallocate=settings.preallocate, fsync=settings.fsync),
        repository=repository,
        locker=make_locker(settings),
        clock=clock,
        metrics=Metrics(),
        hooks=Hooks(settings, EventOutbox(repository), clock),
    )


@contextlib.asynccontextmanager
async def started(components: Components) -> AsyncIterator[Components]:
    """The store, locker and schema set up for as long as the block runs, then closed again (hook
    deliveries' HTTP client, locker, engine). Finishing jobs are the service's: it closes them first."""
    components.store.setup()
    await components.locker.start()
    try:
        await create_schema(components.repository.engine)
        yield components
    finally:
        await components.hooks.close()
        await components.locker.close()
        await components.repository.engine.dispose()
