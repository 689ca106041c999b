"""tusedge.state.sqlite.SQLiteThread: a failed write leaves the connection usable for the next operation."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Connection, text
from sqlalchemy.exc import IntegrityError

from tusedge.state.sqlite import SQLiteThread


def _pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


async def test_a_write_whose_commit_fails_leaves_the_connection_usable(tmp_path: Path) -> None:
    """Disk full (issue 11): SQLite reports SQLITE_FULL at COMMIT, when the WAL is written. A COMMIT that
    fails (here a deferred foreign key, the same path) must roll back, or every later operation on the
    thread's one connection fails with "can't reconnect until invalid transaction is rolled back" until a
    restart: every HEAD of every upload answered 503 after the disk had been full once."""
    thread = SQLiteThread(f"sqlite+pysqlite:///{tmp_path / 'state.db'}", _pragmas)
    try:

        def schema(conn: Connection) -> None:
            conn.execute(text("CREATE TABLE parent (id INTEGER PRIMARY KEY)"))
            conn.execute(text("CREATE TABLE child (id INTEGER PRIMARY KEY, parent INTEGER REFERENCES parent(id))"))

        await thread.write(schema)

        def orphan(conn: Connection) -> None:
            conn.execute(text("PRAGMA defer_foreign_keys=ON"))
            conn.execute(text("INSERT INTO child VALUES (1, 42)"))  # checked only at COMMIT

        with pytest.raises(IntegrityError):
            await thread.write(orphan)

        def count(conn: Connection) -> int:
            return int(conn.execute(text("SELECT count(*) FROM child")).scalar_one())

        assert await thread.read(count) == 0
        await thread.write(lambda conn: conn.execute(text("INSERT INTO parent VALUES (42)")))
        await thread.write(lambda conn: conn.execute(text("INSERT INTO child VALUES (1, 42)")))
        assert await thread.read(count) == 1
    finally:
        thread.close()
