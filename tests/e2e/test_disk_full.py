"""Disk full on a real small file system (issue 11): a loop-mounted ext4 image holds the server's data folder
(upload files and the SQLite state database), a ballast file fills it. Every answer is a 507 with a reason
(never a 500), the bytes an upload made durable before the disk filled stay counted and intact, uploads
that were complete stay byte-exact, and every upload resumes and completes once space returns.

Needs root and mkfs.ext4 (tests/loopfs.py skips with the reason otherwise; .ci/run runs as root)."""

from __future__ import annotations

import errno
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from loopfs import loop_filesystem
from rawhttp import (
    MIB,
    TUS,
    RawRequest,
    create_upload,
    download,
    file_prefix,
    head_offset,
    patch,
    patch_headers,
    sha256,
    upload_file,
)
from server_process import ServerFactory, ServerProcess

PIECE = 2 * MIB  # PATCH size: below the server's 4 MiB drain, so a 507 mid-body always reaches the client


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    with loop_filesystem("ext4", tmp_path, size=96 * MIB) as mount:
        yield mount


class Ballast:
    """Fills the file system to its last block (the server runs as root: the reserved blocks too), leaving
    about ``leave`` bytes free; ``remove()`` gives the space back."""

    def __init__(self, mount: Path, leave: int = 0) -> None:
        self.files = [mount / "ballast"]
        spare = mount / "spare"
        if leave:
            fd = os.open(spare, os.O_WRONLY | os.O_CREAT, 0o600)
            os.posix_fallocate(fd, 0, leave)
            os.close(fd)
        fd = os.open(self.files[0], os.O_WRONLY | os.O_CREAT, 0o600)
        offset, step = 0, 64 * MIB
        while step >= 4096:
            try:
                os.posix_fallocate(fd, offset, step)
                offset += step
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
                step //= 2
        os.close(fd)
        spare.unlink(missing_ok=True)
        os.sync()

    def remove(self) -> None:
        for path in self.files:
            path.unlink(missing_ok=True)
        os.sync()


def no_tracebacks(server: ServerProcess) -> None:
    text = "".join(server.log)
    assert "Traceback" not in text and "unexpected error" not in text, text[-4000:]


def send_pieces(url: str, data: bytes, outcome: dict[str, list[int]]) -> None:
    """PATCH ``data`` from the upload's offset in pieces until done or refused; record every status."""
    statuses = outcome.setdefault(url, [])
    offset = head_offset(url)
    while offset < len(data):
        piece = data[offset : offset + PIECE]
        with RawRequest("PATCH", url, patch_headers(offset, len(piece))) as request:
            try:
                request.send(piece)
            except OSError:
                pass  # answered early (507): the answer is still there to read
            response = request.read_response()
        statuses.append(response.status)
        if response.status != 204:
            assert response.status == 507, (response.status, response.body)
            # The upload file's write, or the state database's commit of the offset, found the disk full.
            assert b"disk is full" in response.body or b"out of disk space" in response.body, response.body
            return
        offset = int(response.headers["upload-offset"])


def test_creation_larger_than_the_free_space_is_507_and_leaves_nothing(
    server_factory: ServerFactory, small_fs: Path
) -> None:
    """Preallocation (the default) reserves the length at creation: an upload the disk cannot hold is refused
    at once with 507 and its reason, and leaves neither a file nor a row behind."""
    server = server_factory(data_dir=small_fs / "data")
    ballast = Ballast(small_fs, leave=8 * MIB)
    response = httpx.post(server.url, headers={**TUS, "Upload-Length": str(32 * MIB)})
    assert response.status_code == 507, response.text
    assert "disk is full" in response.text
    assert list((server.data_dir / "uploads").iterdir()) == []
    ballast.remove()
    assert httpx.post(server.url, headers={**TUS, "Upload-Length": str(32 * MIB)}).status_code == 201
    no_tracebacks(server)


def test_several_uploads_filling_the_disk_get_507_keep_their_bytes_and_resume(
    server_factory: ServerFactory, small_fs: Path
) -> None:
    """Without preallocation the disk fills mid-body: three uploads of 12 MiB streaming at once into ~16 MiB of
    free space. Those refused get 507 "disk is full"; each upload's offset counts only bytes that are in its
    file; an upload completed before is untouched; once the ballast is gone, all three resume and complete."""
    server = server_factory("--no-preallocate", data_dir=small_fs / "data")
    done = os.urandom(3 * MIB + 1)
    done_url = create_upload(server.url, len(done))
    assert patch(done_url, 0, done).status_code == 204
    datas = [os.urandom(12 * MIB + i) for i in range(3)]
    urls = [create_upload(server.url, len(data)) for data in datas]
    ballast = Ballast(small_fs, leave=16 * MIB)

    outcome: dict[str, list[int]] = {}
    threads = [
        threading.Thread(target=send_pieces, args=(url, data, outcome)) for url, data in zip(urls, datas, strict=True)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    refused = [url for url in urls if outcome[url][-1] == 507]
    assert refused, f"the disk never filled: {outcome}"
    for url, data in zip(urls, datas, strict=True):
        offset = head_offset(url)
        assert offset <= len(data)
        assert file_prefix(upload_file(server.data_dir, url), offset) == data[:offset]
    assert sha256(download(done_url)) == sha256(done)

    ballast.remove()
    outcome.clear()
    for url, data in zip(urls, datas, strict=True):
        send_pieces(url, data, outcome)
        assert head_offset(url) == len(data)
        assert sha256(download(url)) == sha256(data)
    no_tracebacks(server)


def test_state_database_on_a_full_disk_answers_507_not_500(server_factory: ServerFactory, small_fs: Path) -> None:
    """The SQLite state database shares the full disk: creations whose row no longer fits answer 507 with a
    reason (SQLITE_FULL translated, no traceback), HEAD keeps answering, and creation works again once
    space returns."""
    server = server_factory("--no-preallocate", data_dir=small_fs / "data")
    url = create_upload(server.url, 100)
    ballast = Ballast(small_fs)
    metadata = "filename " + "QUFB" * 2000  # ~8 KB per row: the database must grow
    statuses = []
    for _ in range(200):
        response = httpx.post(server.url, headers={**TUS, "Upload-Defer-Length": "1", "Upload-Metadata": metadata})
        statuses.append(response.status_code)
        assert response.status_code in (201, 507), (response.status_code, response.text)
        if response.status_code == 507:
            assert "state database is out of disk space" in response.text, response.text
            break
    assert statuses[-1] == 507, f"the database never hit the full disk: {statuses}"
    after = httpx.get(url)  # a read of the upload's state still works (409: not finished)
    assert after.status_code == 409, (after.status_code, after.text, "".join(server.log)[-3000:])
    assert head_offset(url) == 0
    ballast.remove()
    response = httpx.post(server.url, headers={**TUS, "Upload-Defer-Length": "1", "Upload-Metadata": metadata})
    assert response.status_code == 201, response.text
    no_tracebacks(server)
