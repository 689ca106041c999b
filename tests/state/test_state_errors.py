"""tusedge.state.errors: failures of the state database become typed errors (507 / 503), never a 500."""

from __future__ import annotations

import sqlite3

import pytest
from sqlalchemy.exc import IntegrityError, OperationalError

from tusedge.errors import InsufficientStorage, StorageUnavailable
from tusedge.state.errors import state_error


class PgError(Exception):
    """What asyncpg's errors carry: a SQLSTATE."""

    def __init__(self, message: str, sqlstate: str) -> None:
        super().__init__(message)
        self.sqlstate = sqlstate


def wrapped(orig: Exception, invalidated: bool = False) -> OperationalError:
    return OperationalError("INSERT INTO uploads ...", {}, orig, connection_invalidated=invalidated)


def test_sqlite_full_disk_is_507() -> None:
    error = state_error(wrapped(sqlite3.OperationalError("database or disk is full")))
    assert isinstance(error, InsufficientStorage) and error.status == 507


def test_sqlite3s_own_error_is_translated_too() -> None:
    """The SQLite thread runs some statements on the DBAPI connection itself: sqlite3's errors, unwrapped."""
    assert isinstance(state_error(sqlite3.OperationalError("database or disk is full")), InsufficientStorage)
    assert isinstance(state_error(sqlite3.OperationalError("database is locked")), StorageUnavailable)


def test_postgres_disk_full_sqlstate_is_507() -> None:
    error = state_error(wrapped(PgError("could not extend file", "53100")))
    assert isinstance(error, InsufficientStorage)


@pytest.mark.parametrize(
    ("orig", "invalidated"),
    [
        (sqlite3.OperationalError("database is locked"), False),
        (sqlite3.OperationalError("attempt to write a readonly database"), False),
        (ConnectionResetError("connection was closed in the middle of operation"), True),
        (sqlite3.OperationalError("disk I/O error"), False),
    ],
)
def test_busy_read_only_lost_or_failing_database_is_503_with_retry_after(orig: Exception, invalidated: bool) -> None:
    error = state_error(wrapped(orig, invalidated))
    assert isinstance(error, StorageUnavailable) and error.status == 503
    assert error.headers["Retry-After"] == "10"


def test_integrity_error_is_a_503_too_and_other_exceptions_are_not_translated() -> None:
    assert isinstance(state_error(IntegrityError("x", {}, Exception("unique"))), StorageUnavailable)
    assert state_error(ValueError("a bug")) is None
    assert state_error(OSError("not the database")) is None
