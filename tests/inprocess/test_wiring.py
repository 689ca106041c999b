"""The wiring (tusedge.server.components): the service, not the routes, fires every hook and counts every
upload metric, and hands a download what it needs."""

from __future__ import annotations

import base64
import hashlib

from hook_receiver import HookReceiver
from inprocess_app import TUS, Factory, InProcess, sample, until

from tusedge.protocol.headers import DeclaredLength
from tusedge.protocol.requests import CreateUpload

ALL_EVENTS = "pre-create,post-create,post-finish,post-terminate,post-expire"


def creation(length: int, metadata: str | None = None) -> CreateUpload:
    return CreateUpload(DeclaredLength(length), metadata, None, False, None, None)


async def test_the_service_fires_creation_hooks_and_counts_creations(
    inprocess_factory: Factory, receiver: HookReceiver
) -> None:
    """Called directly, without any route, TusService.create asks pre-create, records post-create and
    counts the upload as created."""
    async with inprocess_factory(hook_url=receiver.url, hook_events=tuple(ALL_EVENTS.split(","))) as tus:
        info = await tus.service.create(creation(5), None)
        assert sample(tus, "tusedge_uploads_created_total", {"kind": "single"}) == 1
        await until(lambda: len(receiver.of_type("post-create")) == 1, "post-create delivered")
        (pre,) = receiver.of_type("pre-create")
        assert pre["upload"]["size"] == 5 and "request" not in pre
        assert receiver.of_type("post-create")[0]["upload"]["id"] == info.id


async def test_a_refused_creation_is_not_counted(inprocess_factory: Factory) -> None:
    receiver = HookReceiver(lambda event: (403, "no") if event["type"] == "pre-create" else (200, "ok"))
    try:
        async with inprocess_factory(hook_url=receiver.url, hook_events=("pre-create",)) as tus:
            answer = await tus.client.post("/files/", headers={**TUS, "Upload-Length": "5"})
            assert answer.status_code == 403
            assert sample(tus, "tusedge_uploads_created_total", {"kind": "single"}) == 0
            assert tus.files() == []
    finally:
        receiver.close()


async def test_post_finish_fires_once_for_a_plain_and_once_for_a_verified_upload(
    inprocess_factory: Factory, receiver: HookReceiver
) -> None:
    """post-finish and the completed counter have one place (lifecycle.completed): an upload completed by
    its PATCH and one completed by its finishing job (whole-file digest verified) are counted alike."""
    async with inprocess_factory(hook_url=receiver.url, hook_events=("post-finish",)) as tus:
        plain = await tus.create(5)
        assert (await tus.patch(plain, 0, b"12345")).status_code == 204
        inner = base64.b64encode(hashlib.sha256(b"67890").digest()).decode()
        digest = base64.b64encode(f"sha256 {inner}".encode()).decode()
        verified = await tus.create(5, **{"Upload-Metadata": f"checksum {digest}"})
        assert (await tus.patch(verified, 0, b"67890")).status_code == 204
        await until(lambda: len(receiver.of_type("post-finish")) == 2, "two post-finish events")
        assert sample(tus, "tusedge_uploads_completed_total") == 2
        paths = sorted(event["upload"]["path"] for event in receiver.of_type("post-finish"))
        assert paths == sorted([plain, verified])
        assert (await tus.head(verified)).headers["Upload-Checksum-Status"] == "verified"


async def test_download_names_the_file_after_its_metadata(tus: InProcess) -> None:
    name = base64.b64encode(b"../report.pdf").decode()
    path = await tus.create(5, **{"Upload-Metadata": f"filename {name}"})
    assert (await tus.patch(path, 0, b"hello")).status_code == 204
    download = await tus.service.download(path.rsplit("/", 1)[1])
    assert download.path.read_bytes() == b"hello"
    assert download.filename == "report.pdf"
    answer = await tus.client.get(path)
    assert answer.content == b"hello" and "report.pdf" in answer.headers["Content-Disposition"]
