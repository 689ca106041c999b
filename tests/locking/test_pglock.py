"""tusedge.locking.pglock against a real PostgreSQL: two lockers with their own connection pools stand for
two nodes; a child process holding a lock stands for a node that gets killed."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import AsyncIterator

import pytest

from tusedge.errors import ServerBusy, UploadLocked
from tusedge.locking.pglock import REQUEST_FRESH_S, PostgresLocker, asyncpg_dsn

UPLOAD = "b" * 32


@pytest.fixture
async def nodes(postgres_url: str) -> AsyncIterator[tuple[PostgresLocker, PostgresLocker]]:
    a, b = PostgresLocker(postgres_url), PostgresLocker(postgres_url)
    await a.start()
    await b.start()
    try:
        yield a, b
    finally:
        await a.close()
        await b.close()


def test_sqlalchemy_url_becomes_an_asyncpg_dsn() -> None:
    assert asyncpg_dsn("postgresql+asyncpg://u:p@h:5/db") == "postgresql://u:p@h:5/db"


async def test_a_lock_held_on_one_node_is_refused_on_another_until_released(
    nodes: tuple[PostgresLocker, PostgresLocker],
) -> None:
    a, b = nodes
    lock = await a.acquire(UPLOAD, 1)
    started = time.monotonic()
    with pytest.raises(UploadLocked):
        await b.acquire(UPLOAD, 0.3)
    assert time.monotonic() - started >= 0.3
    await lock.release()
    await lock.release()  # idempotent
    again = await b.acquire(UPLOAD, 1)
    await again.release()


async def test_locks_of_different_uploads_are_independent(nodes: tuple[PostgresLocker, PostgresLocker]) -> None:
    a, b = nodes
    first = await a.acquire(UPLOAD, 0)
    second = await b.acquire("c" * 32, 0)
    await first.release()
    await second.release()


async def test_a_waiting_request_on_another_node_asks_the_holder_to_release(
    nodes: tuple[PostgresLocker, PostgresLocker],
) -> None:
    """The waiter NOTIFYs the upload's channel while it waits; the holder sees the request, lets go, and
    the waiter gets the lock within its timeout."""
    a, b = nodes
    holder = await a.acquire(UPLOAD, 0)
    assert not await holder.release_requested()

    async def give_way() -> None:
        while not await holder.release_requested():
            await asyncio.sleep(0.01)
        await holder.release()

    giving = asyncio.create_task(give_way())
    taken = await b.acquire(UPLOAD, 5)
    await giving
    await taken.release()


async def test_a_request_that_gave_up_is_no_longer_a_release_request(
    nodes: tuple[PostgresLocker, PostgresLocker],
) -> None:
    a, b = nodes
    holder = await a.acquire(UPLOAD, 0)
    with pytest.raises(UploadLocked):
        await b.acquire(UPLOAD, 0.2)
    await asyncio.sleep(0.1)
    assert await holder.release_requested()
    await asyncio.sleep(REQUEST_FRESH_S)
    assert not await holder.release_requested()
    await holder.release()


async def test_ask_release_false_sends_no_request(nodes: tuple[PostgresLocker, PostgresLocker]) -> None:
    a, b = nodes
    holder = await a.acquire(UPLOAD, 0)
    with pytest.raises(UploadLocked):
        await b.acquire(UPLOAD, 0.3, ask_release=False)
    await asyncio.sleep(0.1)
    assert not await holder.release_requested()
    await holder.release()


_HOLDER = """
import asyncio, sys
from tusedge.locking.pglock import PostgresLocker

async def main() -> None:
    locker = PostgresLocker(sys.argv[1])
    await locker.start()
    await locker.acquire(sys.argv[2], 0)
    print("held", flush=True)
    await asyncio.sleep(3600)

asyncio.run(main())
"""


async def test_a_killed_nodes_locks_are_dropped_with_its_connections(
    nodes: tuple[PostgresLocker, PostgresLocker], postgres_url: str
) -> None:
    """kill -9 the process holding the lock: PostgreSQL ends its session and the lock is free at once."""
    _, b = nodes
    child = subprocess.Popen([sys.executable, "-c", _HOLDER, postgres_url, UPLOAD], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "held"
        with pytest.raises(UploadLocked):
            await b.acquire(UPLOAD, 0.2)
    finally:
        child.kill()
        child.wait(10)
    lock = await b.acquire(UPLOAD, 5)
    await lock.release()


async def test_a_node_out_of_lock_connections_answers_busy_not_locked(postgres_url: str) -> None:
    """One connection per upload being written: past the pool's size a request gets ServerBusy (503)."""
    locker = PostgresLocker(postgres_url, max_connections=1)
    await locker.start()
    try:
        held = await locker.acquire(UPLOAD, 0)
        with pytest.raises(ServerBusy, match="lock connections"):
            await locker.acquire("c" * 32, 0)
        await held.release()
        other = await locker.acquire("c" * 32, 0)
        await other.release()
    finally:
        await locker.close()
