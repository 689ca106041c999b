"""Service rules through the whole app in process (tests/inprocess/conftest.py): real SQLite, real files,
real locks, no subprocess."""

from __future__ import annotations

import asyncio
import base64
import hashlib
from collections.abc import AsyncIterator

from inprocess_app import TUS, Factory, InProcess, sample, until

from tusedge.protocol.upload import Status


async def test_offset_is_checked_again_under_the_lock(inprocess_factory: Factory) -> None:
    """core: a PATCH whose Upload-Offset matched before it took the lock, but no longer does once it holds
    it (the holder it displaced committed bytes meanwhile), is 409 and writes nothing."""
    async with inprocess_factory(stale_lock_s=0.05) as tus:
        path = await tus.create(10)
        held = asyncio.Event()
        never = asyncio.Event()

        async def slow_body() -> AsyncIterator[bytes]:
            yield b"12345"
            held.set()
            await never.wait()  # the client goes quiet holding the lock
            yield b"67890"

        first = asyncio.create_task(tus.patch(path, 0, slow_body(), **{"Content-Length": "10"}))
        await held.wait()
        await until(lambda: sample(tus, "tusedge_patches_in_progress") == 1, "the first PATCH is writing")
        # Offset 0 still matches when this one arrives (nothing is committed yet), so it asks the holder to
        # give way; by the time it holds the lock the holder has committed its 5 bytes.
        second = await tus.patch(path, 0, b"abc")
        assert second.status_code == 409, second.text
        assert (await first).status_code == 423
        head = await tus.head(path)
        assert head.headers["Upload-Offset"] == "5"
        upload_id = path.rsplit("/", 1)[1]
        assert (tus.components.settings.uploads_dir / upload_id).read_bytes()[:5] == b"12345"


async def test_checksum_mismatch_keeps_nothing_of_the_patch(tus: InProcess) -> None:
    """checksum: a PATCH whose body does not match Upload-Checksum is 460 and the offset stays."""
    path = await tus.create(10)
    assert (await tus.patch(path, 0, b"12345")).status_code == 204
    wrong = base64.b64encode(hashlib.sha1(b"other").digest()).decode()
    answer = await tus.patch(path, 5, b"67890", **{"Upload-Checksum": f"sha1 {wrong}"})
    assert answer.status_code == 460, answer.text
    assert (await tus.head(path)).headers["Upload-Offset"] == "5"
    right = base64.b64encode(hashlib.sha1(b"67890").digest()).decode()
    answer = await tus.patch(path, 5, b"67890", **{"Upload-Checksum": f"sha1 {right}"})
    assert answer.status_code == 204 and answer.headers["Upload-Offset"] == "10"


async def test_checksum_mismatch_on_creation_with_upload_keeps_no_upload(tus: InProcess) -> None:
    """checksum + creation-with-upload, all or nothing: a refused creation leaves no row and no file."""
    wrong = base64.b64encode(hashlib.sha1(b"other").digest()).decode()
    headers = {**TUS, "Upload-Length": "5", "Content-Type": "application/offset+octet-stream",
               "Upload-Checksum": f"sha1 {wrong}"}  # fmt: skip
    answer = await tus.client.post("/files/", headers=headers, content=b"12345")
    assert answer.status_code == 460, answer.text
    assert tus.files() == []
    assert await tus.components.repository.listing(list(Status)) == []


async def test_deferred_length_is_set_once(tus: InProcess) -> None:
    """creation-defer-length: the first PATCH that declares Upload-Length sets it; another value is 400
    and changes nothing; the same value again is accepted."""
    path = await tus.create(None)
    assert (await tus.head(path)).headers["Upload-Defer-Length"] == "1"
    assert (await tus.patch(path, 0, b"1234", **{"Upload-Length": "10"})).status_code == 204
    refused = await tus.patch(path, 4, b"56", **{"Upload-Length": "12"})
    assert refused.status_code == 400, refused.text
    head = await tus.head(path)
    assert head.headers["Upload-Length"] == "10" and head.headers["Upload-Offset"] == "4"
    assert "Upload-Defer-Length" not in head.headers
    assert (await tus.patch(path, 4, b"56", **{"Upload-Length": "10"})).status_code == 204


async def test_a_refused_patch_does_not_set_the_deferred_length(tus: InProcess) -> None:
    """creation-defer-length, all or nothing: a PATCH refused (here 409) leaves the length deferred."""
    path = await tus.create(None)
    assert (await tus.patch(path, 3, b"12", **{"Upload-Length": "10"})).status_code == 409
    head = await tus.head(path)
    assert head.headers["Upload-Defer-Length"] == "1" and "Upload-Length" not in head.headers


async def test_a_patch_to_an_unknown_or_terminated_upload_leaves_no_lock_files(tus: InProcess) -> None:
    """An error response changes nothing: a PATCH (which takes a free lock before it reads the upload) to an
    id that names no upload is 404, to a terminated one 410, and neither leaves a lock file behind."""
    locks = tus.components.settings.locks_dir
    before = set(locks.iterdir()) if locks.exists() else set()
    unknown = "/files/" + "0" * 32
    assert (await tus.patch(unknown, 0, b"12345")).status_code == 404
    path = await tus.create(10)
    assert (await tus.client.delete(path, headers=TUS)).status_code == 204
    assert (await tus.patch(path, 0, b"12345")).status_code == 410
    assert set(locks.iterdir()) == before
