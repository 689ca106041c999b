"""tusedge.state: UploadRepository against a real SQLite file (WAL), created by create_engine/create_schema."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from upload_records import upload_info

from tusedge.protocol.constants import MAX_INT64
from tusedge.protocol.upload import ConcatKind, Failure, Status, UploadInfo
from tusedge.state.database import create_engine, create_schema
from tusedge.state.repository import UploadRepository

NOW = datetime(2025, 3, 1, 12, 0, 0, 123_456, tzinfo=UTC)


def _id(n: int) -> str:
    return f"{n:032x}"


def _info(n: int, **changes: object) -> UploadInfo:
    return upload_info(_id(n), NOW, **changes)


@pytest.fixture
def repo(engine: AsyncEngine) -> UploadRepository:
    return UploadRepository(engine)


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
async def test_create_schema_is_safe_when_nodes_start_at_once(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """Several processes (workers, nodes) creating the schema of an empty database at the same moment all
    succeed."""
    url = (
        f"sqlite+aiosqlite:///{tmp_path / 'new.db'}" if backend == "sqlite" else request.getfixturevalue("postgres_url")
    )
    engines = [create_engine(url) for _ in range(6)]
    try:
        await asyncio.gather(*(create_schema(engine) for engine in engines))
        await UploadRepository(engines[0]).create(_info(1))
    finally:
        for engine in engines:
            await engine.dispose()


async def test_create_schema_is_idempotent(engine: AsyncEngine, repo: UploadRepository) -> None:
    await repo.create(_info(1))
    await create_schema(engine)
    await create_schema(engine)
    assert await repo.get(_id(1)) == _info(1)


async def test_sqlite_runs_in_wal_mode_with_a_busy_timeout(tmp_path: Path) -> None:
    """docs/durability.md: WAL (readers never block the writer), synchronous=NORMAL, busy_timeout."""
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'state.db'}")
    await create_schema(engine)
    async with engine.connect() as conn:
        assert (await conn.exec_driver_sql("PRAGMA journal_mode")).scalar() == "wal"
        assert (await conn.exec_driver_sql("PRAGMA synchronous")).scalar() == 1
        assert (await conn.exec_driver_sql("PRAGMA busy_timeout")).scalar() == 30000
        assert (tmp_path / "state.db-wal").exists()
    await engine.dispose()


async def test_create_then_get_round_trip(repo: UploadRepository) -> None:
    info = _info(
        1,
        offset=MAX_INT64 - 1,
        length=MAX_INT64,
        metadata="filename d29ybGQudHh0,flag",
        expires_at=NOW + timedelta(days=1),
        concat=ConcatKind.FINAL,
        parts=(_id(2), _id(3), _id(2)),
    )
    await repo.create(info)
    assert await repo.get(_id(1)) == info


async def test_minimal_record_round_trip(repo: UploadRepository) -> None:
    """A deferred upload: no length, no metadata, no expiry, no concatenation."""
    info = _info(1, length=None)
    await repo.create(info)
    got = await repo.get(_id(1))
    assert got == info
    assert got is not None and got.deferred and got.parts == () and got.concat is None


async def test_get_of_unknown_id_is_none(repo: UploadRepository) -> None:
    assert await repo.get(_id(404)) is None


async def test_datetimes_come_back_aware_in_utc(repo: UploadRepository) -> None:
    """The database keeps no time zone; every datetime read back is aware UTC and the same instant."""
    plus_two = timezone(timedelta(hours=2))
    created = datetime(2025, 3, 1, 14, 0, tzinfo=plus_two)
    expires = datetime(2025, 3, 2, 14, 0, 0, 999_999, tzinfo=plus_two)
    await repo.create(_info(1, created_at=created, expires_at=expires))
    got = await repo.get(_id(1))
    assert got is not None
    assert got.created_at == created
    assert got.expires_at == expires
    for moment in (got.created_at, got.expires_at):
        assert moment is not None and moment.tzinfo is UTC
    assert got.created_at.hour == 12


async def test_update_sets_columns_in_one_commit(repo: UploadRepository) -> None:
    await repo.create(_info(1, length=None, expires_at=NOW))
    await repo.update(_id(1), NOW, offset=60, length=60, status=Status.COMPLETE, expires_at=None)
    got = await repo.get(_id(1))
    assert got == _info(1, offset=60, length=60, status=Status.COMPLETE, expires_at=None)
    assert got is not None and got.complete


async def test_update_of_unknown_id_changes_nothing(repo: UploadRepository) -> None:
    await repo.create(_info(1))
    await repo.update(_id(2), NOW, offset=5)
    assert await repo.get(_id(2)) is None
    assert await repo.get(_id(1)) == _info(1)


async def test_claim_succeeds_once(repo: UploadRepository) -> None:
    """Only the request that finds the expected status wins (e.g. ACTIVE -> FINISHING)."""
    await repo.create(_info(1))
    assert await repo.claim(_id(1), NOW, Status.ACTIVE, status=Status.FINISHING)
    assert not await repo.claim(_id(1), NOW, Status.ACTIVE, status=Status.FINISHING)
    got = await repo.get(_id(1))
    assert got is not None and got.status is Status.FINISHING


async def test_final_completes_and_its_parts_retire_in_one_transaction(repo: UploadRepository) -> None:
    """A final's COMPLETE and its partials' TERMINATED commit together: when the claim loses, the parts stay."""
    await repo.create(_info(1, status=Status.FINISHING))
    for n in (2, 3):
        await repo.create(_info(n, status=Status.COMPLETE, offset=100))
    assert not await repo.claim_and_retire(_id(1), NOW, Status.ACTIVE, [_id(2), _id(3)], status=Status.COMPLETE)
    assert {i.status for i in (await repo.get_many([_id(2), _id(3)])).values()} == {Status.COMPLETE}
    assert await repo.claim_and_retire(_id(1), NOW, Status.FINISHING, [_id(2), _id(3)], status=Status.COMPLETE)
    got = await repo.get_many([_id(1), _id(2), _id(3)])
    assert got[_id(1)].status is Status.COMPLETE
    assert got[_id(2)].status is got[_id(3)].status is Status.TERMINATED
    assert set(await repo.tombstones(NOW + timedelta(seconds=1))) == {_id(2), _id(3)}  # files purged with them


async def test_a_failure_reason_is_stored_as_a_value(repo: UploadRepository) -> None:
    """Why an upload failed is a column of its own (``failure``), set with the words (``error``) and read
    back as a Failure; get and get_many (the SQLite thread's prepared SELECT and SQLAlchemy's) agree."""
    await repo.create(_info(1, status=Status.FINISHING))
    await repo.create(_info(2, status=Status.FAILED, error="gone", failure=Failure.PART_GONE))
    words = "the upload's sha256 digest does not match the declared one"
    assert await repo.claim(
        _id(1), NOW, Status.FINISHING, status=Status.FAILED, error=words, failure=Failure.DIGEST_MISMATCH
    )
    failed = _info(1, status=Status.FAILED, error=words, failure=Failure.DIGEST_MISMATCH)
    assert await repo.get(_id(1)) == failed
    assert (await repo.get_many([_id(1)]))[_id(1)] == failed
    got = await repo.get(_id(2))
    assert got is not None and got.failure is Failure.PART_GONE
    await repo.update(_id(2), NOW, failure=None)
    got = await repo.get(_id(2))
    assert got is not None and got.failure is None and got.error == "gone"


async def test_an_older_database_gets_the_failure_column_filled_from_its_words(engine: AsyncEngine) -> None:
    """A state database made before the ``failure`` column (tusedge 0.x wrote only ``error``'s words)
    gets it from create_schema, filled for the uploads that had failed: on the digest where the words
    named it, else a partial upload gone."""
    async with engine.begin() as conn:
        await conn.execute(text("ALTER TABLE uploads DROP COLUMN failure"))
        for n, status, error in [(1, "failed", "the upload's sha256 digest does not match the declared one"),
                                 (2, "failed", "a partial upload of this final upload is gone"),
                                 (3, "active", None)]:  # fmt: skip
            await conn.execute(
                text("INSERT INTO uploads (id, upload_offset, length, status, created_at, updated_at, error)"
                     " VALUES (:id, 0, 100, :status, :now, :now, :error)"),
                {"id": _id(n), "status": status, "now": NOW.replace(tzinfo=None), "error": error},
            )  # fmt: skip
    await asyncio.gather(create_schema(engine), create_schema(engine))  # two workers starting at once
    repo = UploadRepository(engine)
    found = await repo.get_many([_id(1), _id(2), _id(3)])
    assert {n: found[_id(n)].failure for n in (1, 2, 3)} == {
        1: Failure.DIGEST_MISMATCH,
        2: Failure.PART_GONE,
        3: None,
    }
    assert await repo.get(_id(1)) == found[_id(1)]  # the SQLite thread's prepared SELECT reads it too


async def test_get_many_returns_the_known_ones(repo: UploadRepository) -> None:
    for n in (1, 2, 3):
        await repo.create(_info(n, offset=n))
    got = await repo.get_many([_id(3), _id(1), _id(99)])
    assert got == {_id(1): _info(1, offset=1), _id(3): _info(3, offset=3)}
    assert await repo.get_many([]) == {}


async def test_expired_selects_active_uploads_past_their_expiry(repo: UploadRepository) -> None:
    """exp.gone: after expiry the upload answers 404 or 410 and its storage is reclaimed; finished uploads
    and tombstones are not expired again."""
    cases = {
        1: (Status.ACTIVE, NOW - timedelta(seconds=1), True),
        2: (Status.ACTIVE, NOW, True),
        3: (Status.ACTIVE, NOW + timedelta(microseconds=1), False),
        4: (Status.ACTIVE, None, False),
        5: (Status.COMPLETE, NOW - timedelta(days=1), False),
        6: (Status.TERMINATED, NOW - timedelta(days=1), False),
        7: (Status.EXPIRED, NOW - timedelta(days=1), False),
        8: (Status.FINISHING, NOW - timedelta(days=1), False),
    }
    for n, (status, expires_at, _) in cases.items():
        await repo.create(_info(n, status=status, expires_at=expires_at))
    expected = {_id(n) for n, (_, _, expired) in cases.items() if expired}
    assert set(await repo.expired(NOW)) == expected
    # A caller in another time zone asks about the same instant.
    assert set(await repo.expired(NOW.astimezone(timezone(timedelta(hours=-5))))) == expected
    assert len(await repo.expired(NOW, limit=1)) == 1


async def test_purge_tombstones_forgets_old_terminated_and_expired(repo: UploadRepository) -> None:
    old, recent = NOW - timedelta(days=30), NOW + timedelta(seconds=1)
    await repo.create(_info(1))
    await repo.update(_id(1), old, status=Status.TERMINATED)
    await repo.create(_info(2))
    await repo.update(_id(2), old, status=Status.EXPIRED)
    await repo.create(_info(3))
    await repo.update(_id(3), recent, status=Status.TERMINATED)
    await repo.create(_info(4))
    await repo.update(_id(4), old, offset=1)  # active and untouched for long: not a tombstone
    await repo.create(_info(5))
    await repo.update(_id(5), old, status=Status.COMPLETE)
    assert await repo.purge_tombstones(NOW) == 2
    assert await repo.get(_id(1)) is None
    assert await repo.get(_id(2)) is None
    assert {n for n in (3, 4, 5) if await repo.get(_id(n)) is not None} == {3, 4, 5}
    assert await repo.purge_tombstones(NOW) == 0


async def test_with_status_and_finals_waiting_for_a_part(repo: UploadRepository) -> None:
    await repo.create(_info(1, concat=ConcatKind.PARTIAL))
    await repo.create(_info(2, concat=ConcatKind.PARTIAL))
    await repo.create(_info(3, length=None, concat=ConcatKind.FINAL, parts=(_id(1), _id(2))))
    await repo.create(_info(4, length=None, concat=ConcatKind.FINAL, parts=(_id(2),)))
    await repo.create(_info(5, concat=ConcatKind.FINAL, parts=(_id(1),), status=Status.COMPLETE))
    assert {info.id for info in await repo.finals_waiting_for(_id(1))} == {_id(3)}
    assert {info.id for info in await repo.finals_waiting_for(_id(2))} == {_id(3), _id(4)}
    assert await repo.finals_waiting_for(_id(9)) == []
    assert {info.id for info in await repo.with_status(Status.COMPLETE)} == {_id(5)}


async def test_state_survives_a_new_engine(engine: AsyncEngine, repo: UploadRepository) -> None:
    """Offsets are the contract: a committed offset is read back by a fresh engine (as after a restart,
    or by another node)."""
    await repo.create(_info(1))
    await repo.update(_id(1), NOW, offset=42)
    other = create_engine(engine.url.render_as_string(hide_password=False))
    try:
        await create_schema(other)
        got = await UploadRepository(other).get(_id(1))
    finally:
        await other.dispose()
    assert got is not None and got.offset == 42


async def test_sqlite_prepared_statements_store_what_sqlalchemy_stores(tmp_path: Path) -> None:
    """On SQLite create/get/update run as prepared DBAPI statements (tusedge.state.sqlite): the stored text
    of every column is what SQLAlchemy's own INSERT/UPDATE would have stored, and rows SQLAlchemy wrote
    read back the same through them."""
    from sqlalchemy import insert, update

    from tusedge.state.repository import uploads

    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'state.db'}")
    await create_schema(engine)
    repo = UploadRepository(engine)
    plus_two = timezone(timedelta(hours=2))
    info = _info(1, metadata="a b", expires_at=datetime(2025, 3, 2, 14, 0, 0, 5, tzinfo=plus_two),
                 concat=ConcatKind.PARTIAL, created_at=datetime(2025, 3, 1, 14, 0, tzinfo=plus_two))  # fmt: skip
    await repo.create(info)  # prepared
    core = {"id": _id(2), "upload_offset": 0, "length": 100, "metadata": "a b", "status": "active",
            "concat": "partial", "parts": None, "created_at": info.created_at, "updated_at": info.created_at,
            "expires_at": info.expires_at, "error": None}  # fmt: skip
    async with engine.begin() as conn:
        await conn.execute(insert(uploads).values(core))

    async def stored(n: int) -> tuple[object, ...]:
        async with engine.connect() as conn:
            row = (await conn.execute(text("SELECT * FROM uploads WHERE id = :id"), {"id": _id(n)})).one()
        return tuple(row)[1:]

    assert await stored(1) == await stored(2)
    assert await repo.get(_id(2)) == replace(info, id=_id(2))
    later = NOW + timedelta(seconds=1, microseconds=7)
    await repo.update(_id(1), later, offset=60, status=Status.COMPLETE, expires_at=None, error="x")  # prepared
    async with engine.begin() as conn:
        await conn.execute(update(uploads).where(uploads.c.id == _id(2)).values(
            upload_offset=60, status="complete", expires_at=None, error="x", updated_at=later))  # fmt: skip
    assert await stored(1) == await stored(2)
    assert await repo.get(_id(1)) == replace(info, offset=60, status=Status.COMPLETE, expires_at=None, error="x")
    await engine.dispose()
