"""The store contract (tusedge/storage/base.py): a store's declared capabilities decide the extensions the
server advertises and the requests it takes; the file store has them all."""

from __future__ import annotations

from pathlib import Path

import pytest
from inprocess_app import TUS, Factory

from tusedge.config import Settings
from tusedge.protocol.constants import Extension
from tusedge.server.routes import extensions
from tusedge.storage.base import (
    Capabilities,
    Concater,
    ContentServer,
    DataStore,
    as_concater,
    as_content_server,
)
from tusedge.storage.filestore import FileStore

EVERYTHING = Capabilities(termination=True, concatenation=True, defer_length=True, content=True)
CORE_ONLY = Capabilities(termination=False, concatenation=False, defer_length=False, content=False)


def contract(store: FileStore) -> tuple[DataStore, Concater, ContentServer]:
    """mypy checks here that the file store meets every part of the contract."""
    return store, store, store


def test_the_file_store_has_every_capability(tmp_path: Path) -> None:
    store = FileStore(tmp_path)
    assert store.capabilities == EVERYTHING
    assert isinstance(store, Concater) and isinstance(store, ContentServer)
    assert as_concater(store) is store and as_content_server(store) is store
    assert contract(store) == (store, store, store)


def test_extensions_are_composed_from_the_capabilities() -> None:
    full = extensions(Settings(expiry_s=60), EVERYTHING)
    assert full == [
        Extension.CREATION, Extension.CREATION_WITH_UPLOAD, Extension.CREATION_DEFER_LENGTH, Extension.TERMINATION,
        Extension.CHECKSUM, Extension.CONCATENATION, Extension.CONCATENATION_UNFINISHED, Extension.EXPIRATION,
    ]  # fmt: skip
    core = extensions(Settings(expiry_s=0), CORE_ONLY)
    assert core == [Extension.CREATION, Extension.CREATION_WITH_UPLOAD, Extension.CHECKSUM]


def test_a_store_without_a_capability_is_not_used_for_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(FileStore, "capabilities", CORE_ONLY)
    store = FileStore(tmp_path)
    with pytest.raises(TypeError, match="concatenation off"):
        as_concater(store)
    with pytest.raises(TypeError, match="content off"):
        as_content_server(store)


async def test_a_store_with_the_core_only_is_served_as_such(
    inprocess_factory: Factory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Neither advertised nor taken: DELETE and GET are 405, Upload-Concat and Upload-Defer-Length 400;
    plain uploads work as ever."""
    monkeypatch.setattr(FileStore, "capabilities", CORE_ONLY)
    async with inprocess_factory() as tus:
        options = await tus.client.options("/files/", headers=TUS)
        assert options.headers["Tus-Extension"] == "creation,creation-with-upload,checksum,expiration"
        path = await tus.create(3)
        assert (await tus.patch(path, 0, b"abc")).status_code == 204
        assert (await tus.client.get(path)).status_code == 405
        assert (await tus.client.delete(path, headers=TUS)).status_code == 405
        partial = await tus.client.post("/files/", headers={**TUS, "Upload-Length": "3", "Upload-Concat": "partial"})
        assert partial.status_code == 400 and "concatenation" in partial.text
        deferred = await tus.client.post("/files/", headers={**TUS, "Upload-Defer-Length": "1"})
        assert deferred.status_code == 400 and "creation-defer-length" in deferred.text
        assert tus.files() == [path.rsplit("/", 1)[1]]
