"""Engine and schema. SQLite gets WAL, a busy timeout and synchronous=NORMAL (see docs/durability.md)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, event, inspect, text
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
    """Create missing tables and add the columns a database made by an older tusedge lacks; safe when
    several workers or nodes start at once (the loser of a race sees "already exists" or "duplicate
    column" from SQLite, a duplicate catalog key from PostgreSQL, and checks again)."""
    for attempt in range(3):
        try:
            async with engine.begin() as conn:
                await conn.run_sync(Base.metadata.create_all)
                await conn.run_sync(_add_missing_columns)
            return
        except (OperationalError, ProgrammingError, IntegrityError) as exc:
            if not any(race in str(exc) for race in _RACES) or attempt == 2:
                raise


_RACES = ("already exists", "duplicate key", "duplicate column")

# Columns added since the table was first made: name -> (SQL type, SQL that fills it for existing rows).
_ADDED_COLUMNS = {
    # Why an upload failed, as a value. Before it, only ``error``'s words said so: a failed upload whose
    # words name its digest failed on the digest (the one other reason: a partial upload gone).
    "failure": (
        "VARCHAR(32)",
        "UPDATE uploads SET failure = CASE WHEN error LIKE '%digest%' THEN 'digest-mismatch' ELSE 'part-gone' END"
        " WHERE status = 'failed' AND failure IS NULL",
    ),
}


def _add_missing_columns(conn: Connection) -> None:
    present = {column["name"] for column in inspect(conn).get_columns("uploads")}
    for name, (sql_type, fill) in _ADDED_COLUMNS.items():
        if name not in present:
            conn.execute(text(f"ALTER TABLE uploads ADD COLUMN {name} {sql_type}"))
            conn.execute(text(fill))
