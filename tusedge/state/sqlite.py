"""SQLite state on one dedicated thread: a whole repository operation is one hop to it.

Through aiosqlite every statement is several hops to its connection's thread (cursor, execute, fetch,
close: a queue put and a condition wake-up each, on the event loop), so one repository call cost 4-5
hops and a small upload ~20. Here a repository operation is a plain function of a synchronous SQLAlchemy
``Connection`` (pysqlite: the same sqlite3 module aiosqlite wraps, the same dialect and column types),
run on the one thread that owns the connection: one hop there and one wake-up back. That thread is also
this process's only SQLite writer, so our own writes queue there and never meet each other's
``SQLITE_BUSY`` (other processes — ``--workers`` — still go through SQLite's busy handler).

The async engine (aiosqlite) stays for the cold paths: creating the schema, the readiness ping.
"""

from __future__ import annotations

import asyncio
import queue
import threading
import weakref
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.ext.asyncio import AsyncEngine

from tusedge.threads import deliver, settled

T = TypeVar("T")

_Job = tuple[Callable[[Connection], Any], bool, asyncio.Future[Any], asyncio.AbstractEventLoop]


class SQLiteThread:
    """One thread, one connection; ``await read(fn)`` / ``await write(fn)`` run ``fn(connection)`` there,
    a write in one transaction (committed when ``fn`` returns, rolled back when it raises)."""

    def __init__(self, url: str, pragmas: Callable[[Any, Any], None]) -> None:
        self.engine: Engine = create_engine(url, connect_args={"timeout": 30}, pool_reset_on_return=None)
        event.listen(self.engine, "connect", pragmas)
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._closed = False

    @property
    def closed(self) -> bool:
        return self._closed

    async def read(self, fn: Callable[[Connection], T]) -> T:
        return await self._submit(fn, False)

    async def write(self, fn: Callable[[Connection], T]) -> T:
        return await self._submit(fn, True)

    async def _submit(self, fn: Callable[[Connection], T], write: bool) -> T:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        with self._lock:
            if self._closed:
                raise RuntimeError("the state database is closed")
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="tusedge-sqlite", daemon=True)
                self._thread.start()
        self._jobs.put((fn, write, future, loop))
        return await settled(future)  # not abandoned on cancellation: a commit in flight finishes first

    def _run(self) -> None:
        conn: Connection | None = None
        jobs = self._jobs
        while True:
            job = jobs.get()
            if job is None:
                break
            fn, write, future, loop = job
            try:
                if conn is None:
                    conn = self.engine.connect()
                raw = conn.connection.driver_connection
                assert raw is not None
                try:
                    result: Any = fn(conn)
                except BaseException:
                    conn = _rolled_back(conn, raw)
                    raise
                try:
                    # Both: SQLAlchemy's transaction (a Core statement autobegins one) and sqlite3's own (the
                    # prepared statements below go to the DBAPI connection, which began one before its DML).
                    if write:
                        conn.commit()
                        raw.commit()
                    else:
                        conn.rollback()  # ends SQLAlchemy's autobegun transaction (pysqlite began none for a SELECT)
                except BaseException:
                    # The COMMIT itself failed (SQLITE_FULL on a full disk, a deferred constraint). SQLite may
                    # keep that transaction open while SQLAlchemy counts it as over, so neither a rollback nor
                    # carrying on is safe (a later commit would commit its rows; or every later operation
                    # fails with "can't reconnect until invalid transaction is rolled back"): the connection
                    # is dropped (closing it rolls back) and the next operation opens a fresh one.
                    _discard(conn)
                    conn = None
                    raise
            except BaseException as exc:
                deliver(loop, future, None, exc)
            else:
                deliver(loop, future, result, None)
            del job, fn, future, loop
        if conn is not None:
            conn.close()
        self.engine.dispose()

    def close(self) -> None:
        """Let the thread finish the queued operations, then close its connection (does not wait)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            started = self._thread is not None
        if started:
            self._jobs.put(None)
        else:
            self.engine.dispose()


def _rolled_back(conn: Connection, raw: Any) -> Connection | None:
    """``conn`` after rolling its transactions back (SQLAlchemy's and sqlite3's), or None (dropped) when even
    that fails."""
    try:
        conn.rollback()
        raw.rollback()
        return conn
    except Exception:
        _discard(conn)
        return None


def _discard(conn: Connection) -> None:
    """Drop ``conn`` for good: its DBAPI connection is invalidated (closed, which rolls back whatever SQLite
    still holds open) rather than returned to the pool."""
    try:
        conn.invalidate()
        conn.close()
    except Exception:
        pass


_threads: weakref.WeakKeyDictionary[Engine, SQLiteThread] = weakref.WeakKeyDictionary()
_listening: weakref.WeakSet[Engine] = weakref.WeakSet()
_threads_lock = threading.Lock()


def thread_for(engine: AsyncEngine, pragmas: Callable[[Any, Any], None]) -> SQLiteThread:
    """The one SQLite thread of ``engine``'s database in this process (shared by every repository made
    on that engine), closed when the engine is disposed."""
    sync_engine = engine.sync_engine
    with _threads_lock:
        thread = _threads.get(sync_engine)
        if thread is None:
            thread = SQLiteThread(engine.url.set(drivername="sqlite+pysqlite").render_as_string(False), pragmas)
            _threads[sync_engine] = thread
            if sync_engine not in _listening:
                _listening.add(sync_engine)
                event.listen(sync_engine, "engine_disposed", _close)
        return thread


def _close(sync_engine: Engine) -> None:
    with _threads_lock:
        thread = _threads.pop(sync_engine, None)
    if thread is not None:
        thread.close()


# --- the hot statements, as prepared DBAPI statements -------------------------------------------------
# The calls every small upload makes (create, get, update) skip SQLAlchemy on SQLite: the SQL is fixed
# here once (sqlite3 keeps each string's prepared statement in its per-connection cache), the parameters
# are converted as SQLAlchemy's SQLite types store them (naive UTC text "YYYY-MM-DD HH:MM:SS.ffffff", the
# format of DATETIME with microseconds), and no statement object or cache key is built per call, neither
# on the event loop nor on this thread. tests/state checks the stored values are the same both ways.

_GET = (
    "SELECT id, upload_offset, length, metadata, status, concat, parts, created_at, expires_at, error, failure "
    "FROM uploads WHERE id = ?"
)
_INSERT = (
    "INSERT INTO uploads (id, upload_offset, length, metadata, status, concat, parts, created_at, updated_at, "
    "expires_at, error, failure) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_UPDATES: dict[tuple[str, ...], str] = {}


def to_text(moment: datetime | None) -> str | None:
    """A datetime as SQLAlchemy's SQLite DATETIME stores it (after UTCDateTime made it naive UTC)."""
    if moment is None:
        return None
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    return moment.isoformat(" ", "microseconds")


def from_text(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text).replace(tzinfo=UTC)


def _cursor(conn: Connection) -> Any:
    return conn.connection.driver_connection.cursor()  # type: ignore[union-attr]


def get_row(conn: Connection, upload_id: str) -> tuple[Any, ...] | None:
    """The upload's row (the columns of _GET, datetimes still text), or None."""
    cursor = _cursor(conn)
    try:
        row: tuple[Any, ...] | None = cursor.execute(_GET, (upload_id,)).fetchone()
        return row
    finally:
        cursor.close()


def insert_row(conn: Connection, values: tuple[Any, ...]) -> None:
    """Insert one upload (the columns of _INSERT, in order; datetimes already text)."""
    cursor = _cursor(conn)
    try:
        cursor.execute(_INSERT, values)
    finally:
        cursor.close()


def update_row(conn: Connection, upload_id: str, columns: dict[str, Any]) -> int:
    """Set ``columns`` (column name -> value, datetimes already text) of one upload; the rows changed."""
    names = tuple(columns)
    sql = _UPDATES.get(names)
    if sql is None:
        sql = _UPDATES[names] = "UPDATE uploads SET " + ", ".join(f"{n} = ?" for n in names) + " WHERE id = ?"
    cursor = _cursor(conn)
    try:
        count: int = cursor.execute(sql, (*columns.values(), upload_id)).rowcount
        return count
    finally:
        cursor.close()
