"""Engine and schema. SQLite gets WAL, a busy timeout and synchronous=NORMAL (see docs/durability.md)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import event
from sqlalchemy.exc import IntegrityError, OperationalError, ProgrammingError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from tusedge.state.models import Base


def create_engine(url: str) -> AsyncEngine:
    is_sqlite = url.startswith("sqlite")
    kwargs: dict[str, Any] = {}
    if is_sqlite:
        kwargs["connect_args"] = {"timeout": 30}
        # Every write goes through engine.begin() (commit or rollback), and a SELECT opens no transaction
        # in Python's sqlite3, so the pool's rollback on each check-in is a no-op that still costs a
        # round trip to aiosqlite's thread. Without it: one thread hop less per repository call.
        kwargs["pool_reset_on_return"] = None
    engine = create_async_engine(url, **kwargs)
    if is_sqlite:
        event.listen(engine.sync_engine, "connect", sqlite_pragmas)
    return engine


def sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    """Set on every SQLite connection (the async engine's and the state thread's, tusedge.state.sqlite)."""
    cursor = dbapi_connection.cursor()
    # WAL: readers never block the writer. NORMAL: a commit survives a killed process (the WAL is
    # in the OS); a power cut may roll back the newest commits, which can only move an offset
    # back, never ahead of the synced bytes.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


async def create_schema(engine: AsyncEngine) -> None:
    """Create missing tables; safe when several workers or nodes start at once (the loser of a race sees
    "already exists" from SQLite, a duplicate catalog key from PostgreSQL, and checks again)."""
    for attempt in range(3):
        try:
            async with engine.begin() as conn:
                await conn.run_sync(Base.metadata.create_all)
            return
        except (OperationalError, ProgrammingError, IntegrityError) as exc:
            if ("already exists" not in str(exc) and "duplicate key" not in str(exc)) or attempt == 2:
                raise
