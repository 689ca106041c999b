"""Failures of the state database, translated into the typed errors clients get (as storage/oserrors.py does
for the upload files): a full disk under SQLite or PostgreSQL is a 507, a database that is busy, read-only,
unreachable or failing is a 503 with Retry-After. A request that meets one changes nothing: its transaction
was rolled back, and an offset is only ever committed after its bytes were synced."""

from __future__ import annotations

import sqlite3

from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from tusedge.errors import InsufficientStorage, StorageUnavailable, TusError

# What the state layer raises: SQLAlchemy's errors, and sqlite3's own from the statements the SQLite thread
# runs on its DBAPI connection directly (tusedge/state/sqlite.py).
STATE_ERRORS: tuple[type[Exception], ...] = (SQLAlchemyError, sqlite3.Error)
RETRY = {"Retry-After": "10"}
# SQLite's messages (sqlite3.OperationalError has no error code before Python 3.11's sqlite_errorcode).
_FULL = ("database or disk is full", "no space left on device", "disk full")
_BUSY = ("database is locked", "database table is locked", "busy")
_READ_ONLY = ("readonly database", "read-only", "read only")
# PostgreSQL's SQLSTATEs: class 53 is "insufficient resources" (53100 disk_full).
_PG_FULL = {"53100"}


def state_error(exc: BaseException) -> TusError | None:
    """The typed error for a failure of the state database, or None when ``exc`` is not one."""
    if not isinstance(exc, STATE_ERRORS):
        return None
    orig = exc.orig if isinstance(exc, DBAPIError) else None
    text = str(orig if orig is not None else exc).lower()
    sqlstate = str(getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None) or "")
    if sqlstate in _PG_FULL or any(words in text for words in _FULL):
        return InsufficientStorage("the server's state database is out of disk space")
    if any(words in text for words in _BUSY):
        return StorageUnavailable("the server's state database is busy; retry later", headers=dict(RETRY))
    if any(words in text for words in _READ_ONLY):
        return StorageUnavailable("the server's state database is read-only; retry later", headers=dict(RETRY))
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return StorageUnavailable("the server lost its state database connection; retry later", headers=dict(RETRY))
    reason = text.splitlines()[0][:200] if text else type(exc).__name__
    return StorageUnavailable(f"the server's state database failed ({reason}); retry later", headers=dict(RETRY))
