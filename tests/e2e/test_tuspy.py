"""tuspy (tus/tus-py-client), an off-the-shelf tus client, against a real tusedge server: resuming from its
stored upload URL after an interruption and a ``kill -9`` of the server, and metadata that names the download."""

from __future__ import annotations

import base64
import math
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from rawhttp import MIB, TUS, download, head_offset, sha256
from server_process import ServerFactory, ServerProcess
from tusclient.client import TusClient
from tusclient.storage.filestorage import FileStorage
from tusclient.uploader.uploader import Uploader

CHUNK_BYTES = 1 * MIB


@contextmanager
def url_storage(path: Path) -> Iterator[FileStorage]:
    """tuspy's file-backed store of upload URLs (by file fingerprint); its class is not annotated."""
    storage = FileStorage(str(path))  # type: ignore[no-untyped-call]
    try:
        yield storage
    finally:
        storage.close()  # type: ignore[no-untyped-call]


def new_uploader(server: ServerProcess, path: Path, storage: FileStorage, filename: str) -> Uploader:
    client = TusClient(server.url)
    uploader: Uploader = client.uploader(
        file_path=str(path),
        chunk_size=CHUNK_BYTES,
        metadata={"filename": filename},
        store_url=True,
        url_storage=storage,
    )
    return uploader


def test_tuspy_resumes_from_stored_url_after_interruption_and_kill_9(
    server_factory: ServerFactory, tmp_path: Path
) -> None:
    """core: "the Client SHOULD use the HEAD request to determine the offset at which the upload should be
    continued". tuspy uploads 3,500,000 of a 10 MB file in 1 MiB chunks and stops; the server is killed with
    SIGKILL and restarted. A new uploader with the same URL storage finds the upload URL, starts at offset
    3,500,000 (not 0), sends only the remaining bytes, and the download matches the file."""
    server = server_factory()
    path = tmp_path / "payload.bin"
    data = os.urandom(10 * 1_000_000)
    path.write_bytes(data)
    stop_at = 3_500_000
    urls = tmp_path / "tuspy-urls.json"

    with url_storage(urls) as storage:
        first = new_uploader(server, path, storage, "payload.bin")
        first.upload(stop_at=stop_at)
    assert first.offset == stop_at
    url = first.url
    assert url is not None and head_offset(url) == stop_at

    server.kill()
    server.start()

    with url_storage(urls) as storage:
        resumed = new_uploader(server, path, storage, "payload.bin")
        assert resumed.url == url, "tuspy did not find the stored upload URL"
        assert resumed.offset == stop_at, f"the new uploader starts at {resumed.offset}, not at {stop_at}"
        sent, requests = 0, 0
        while resumed.offset < len(data):
            before = resumed.offset
            length = resumed.get_request_length()
            resumed.upload_chunk()
            assert resumed.offset == before + length
            sent += length
            requests += 1
    # Only the bytes past the stored offset went over the wire a second time: none of the first 3,500,000.
    assert sent == len(data) - stop_at
    assert requests == math.ceil((len(data) - stop_at) / CHUNK_BYTES)
    assert sha256(download(url)) == sha256(data)


@pytest.mark.parametrize(
    ("filename", "disposition"),
    [
        ("report-2024.bin", 'attachment; filename="report-2024.bin"'),
        ("résumé 2024.pdf", "attachment; filename*=utf-8''r%C3%A9sum%C3%A9%202024.pdf"),
        ("../../etc/passwd", 'attachment; filename="passwd"'),
    ],
)
def test_tuspy_filename_metadata_names_the_download(
    tusedge_server: ServerProcess, tmp_path: Path, filename: str, disposition: str
) -> None:
    """creation.metadata and ours.get: tuspy's ``filename`` metadata is returned by HEAD as sent, and GET offers
    the finished upload as an attachment under that name (its last path component, RFC 6266 encoded)."""
    path = tmp_path / "upload.bin"
    data = os.urandom(1_500_000)
    path.write_bytes(data)
    with url_storage(tmp_path / "tuspy-urls.json") as storage:
        uploader = new_uploader(tusedge_server, path, storage, filename)
        uploader.upload()
    url = uploader.url
    assert url is not None
    head = httpx.head(url, headers=TUS, timeout=10)
    assert head.headers["Upload-Metadata"] == "filename " + base64.b64encode(filename.encode()).decode()
    response = httpx.get(url, timeout=30)
    assert response.status_code == 200
    assert response.headers["Content-Disposition"] == disposition
    assert sha256(response.content) == sha256(data)
