"""Parallel uploads: the concatenation extension, the in-kernel merge, and whole-file verification,
against a real tusedge server (and the real tus-js-client for ``parallelUploads``)."""

from __future__ import annotations

import base64
import hashlib
import os
import sqlite3
import threading
import time
from pathlib import Path

import httpx
import pytest
from js_harness import MiB, download_sha256, make_random_file, run_upload
from server_process import ServerFactory, ServerProcess

TUS = {"Tus-Resumable": "1.0.0"}
OCTETS = {**TUS, "Content-Type": "application/offset+octet-stream"}


def create(client: httpx.Client, server: ServerProcess, headers: dict[str, str]) -> str:
    response = client.post(server.url, headers={**TUS, **headers})
    assert response.status_code == 201, response.text
    return response.headers["Location"]


def upload_partials(client: httpx.Client, server: ServerProcess, parts: list[bytes]) -> list[str]:
    urls = []
    for part in parts:
        url = create(client, server, {"Upload-Length": str(len(part)), "Upload-Concat": "partial"})
        response = client.patch(url, content=part, headers={**OCTETS, "Upload-Offset": "0"})
        assert response.status_code == 204, response.text
        urls.append(url)
    return urls


def digest_metadata(data: bytes, algorithm: str = "sha256") -> str:
    digest = base64.b64encode(hashlib.new(algorithm, data).digest()).decode()
    return "checksum " + base64.b64encode(f"{algorithm} {digest}".encode()).decode()


def test_tus_js_client_parallel_uploads_4_partials_final_matches(
    node_executable: str, tusedge_server: ServerProcess, tmp_path: Path
) -> None:
    """tus-js-client ``parallelUploads: 4`` sends four partial uploads and a final one naming them; the
    server's final upload is the file, byte for byte (issue 3)."""
    size = 200 * MiB + 12_345
    source = tmp_path / "big.bin"
    digest = make_random_file(source, size)
    result = run_upload(
        node_executable,
        ["--endpoint", tusedge_server.url, "--file", str(source), "--parallel", "4", "--chunk-size", str(16 * MiB)],
        tmp_path,
        timeout=240,
    )
    assert result.returncode == 0, result.describe(tusedge_server)
    head = httpx.head(result.final["url"], headers=TUS)
    assert head.headers["Upload-Concat"].startswith("final;")
    assert len(head.headers["Upload-Concat"].removeprefix("final;").split(" ")) == 4
    assert int(head.headers["Upload-Offset"]) == int(head.headers["Upload-Length"]) == size
    assert download_sha256(result.final["url"]) == (size, digest)


def test_tus_js_client_resumes_parallel_upload_after_abort(
    node_executable: str, tusedge_server: ServerProcess, tmp_path: Path
) -> None:
    """Resuming a parallel upload after an abort continues the partials from their offsets."""
    size = 48 * MiB + 321
    source = tmp_path / "payload.bin"
    digest = make_random_file(source, size)
    store = tmp_path / "urls.json"
    common = ["--endpoint", tusedge_server.url, "--file", str(source), "--parallel", "4", "--store", str(store)]
    first = run_upload(
        node_executable, [*common, "--chunk-size", str(MiB), "--abort-after-bytes", str(20 * MiB)], tmp_path, 120
    )
    assert first.returncode == 3, first.describe(tusedge_server)
    second = run_upload(node_executable, [*common, "--chunk-size", str(MiB), "--resume"], tmp_path, 120)
    assert second.returncode == 0, second.describe(tusedge_server)
    assert second.final["resumedFrom"] is not None and second.final["resumedFrom"] > 0
    assert download_sha256(second.final["url"]) == (size, digest)


def _status_in_db(server: ServerProcess, upload_id: str) -> str:
    with sqlite3.connect(server.data_dir / "tusedge.db") as db:
        row = db.execute("SELECT status FROM uploads WHERE id = ?", (upload_id,)).fetchone()
    return str(row[0]) if row else "missing"


@pytest.mark.parametrize("delay_s", [0.05, 0.25])
def test_merge_interrupted_by_kill9_completes_correctly_after_restart(
    server_factory: ServerFactory, delay_s: float
) -> None:
    """A crash in the middle of a merge leaves a state that completes on the next start; no half-merged
    file is ever served as complete (issue 3)."""
    server = server_factory("--finish-wait-s", "60")
    parts = [os.urandom(64 * MiB) for _ in range(4)]
    whole = hashlib.sha256(b"".join(parts)).hexdigest()
    with httpx.Client(timeout=120) as client:
        urls = upload_partials(client, server, parts)
    final_url: list[str] = []

    def post_final() -> None:
        try:
            with httpx.Client(timeout=120) as client:
                final_url.append(create(client, server, {"Upload-Concat": "final;" + " ".join(urls)}))
        except (httpx.HTTPError, AssertionError):
            pass  # the server was killed under it

    poster = threading.Thread(target=post_final)
    poster.start()
    # Find the final upload in the database as soon as it exists, then kill the server mid-merge.
    deadline = time.monotonic() + 30
    final_id = None
    while final_id is None and time.monotonic() < deadline:
        with sqlite3.connect(server.data_dir / "tusedge.db") as db:
            row = db.execute("SELECT id FROM uploads WHERE concat = 'final'").fetchone()
        final_id = row[0] if row else None
        time.sleep(0.01)
    assert final_id is not None, "the final upload was never created"
    time.sleep(delay_s)
    server.kill()
    poster.join(30)
    state_after_kill = _status_in_db(server, final_id)
    assert state_after_kill in ("finishing", "complete")
    url = server.url + final_id
    if state_after_kill == "finishing":
        # Not complete: never served as complete, and HEAD shows no offset for the unfinished final.
        assert all(os.path.exists(server.data_dir / "uploads" / u.rsplit("/", 1)[1]) for u in urls)
    server.start()
    deadline = time.monotonic() + 60
    while True:
        head = httpx.head(url, headers=TUS)
        assert head.status_code == 200
        if "Upload-Offset" in head.headers:
            break
        # The merge may end between the HEAD and this GET; what must never happen is a wrong file.
        got = httpx.get(url)
        assert got.status_code == 409 or (
            got.status_code == 200 and hashlib.sha256(got.content).hexdigest() == whole
        ), "an unfinished final upload was served"
        assert time.monotonic() < deadline, "the interrupted merge did not complete after restart"
        time.sleep(0.1)
    assert int(head.headers["Upload-Offset"]) == 4 * 64 * MiB
    assert download_sha256(url) == (4 * 64 * MiB, whole)


def test_merge_kill9_hits_a_merge_in_progress(server_factory: ServerFactory) -> None:
    """Guard for the test above: with a slow enough merge, the database shows the final as ``finishing``
    (not complete) while the merge runs, so a kill at that moment really interrupts a merge."""
    server = server_factory("--finish-wait-s", "0")
    parts = [os.urandom(64 * MiB) for _ in range(4)]
    with httpx.Client(timeout=120) as client:
        urls = upload_partials(client, server, parts)
        final = create(client, server, {"Upload-Concat": "final;" + " ".join(urls)})
        head = client.head(final, headers=TUS)
    # --finish-wait-s 0: the POST answered before the merge of 256 MiB was done.
    assert "Upload-Offset" not in head.headers
    assert head.headers["Upload-Length"] == str(4 * 64 * MiB)


def test_checksum_mismatch_mid_upload_keeps_earlier_bytes_and_offset(tusedge_server: ServerProcess) -> None:
    """sum.460: a wrong digest is answered 460, the chunk is not kept and the offset does not move; the
    bytes accepted before are intact and the upload can go on (issue 3)."""
    first, second = os.urandom(3 * MiB + 7), os.urandom(2 * MiB)
    with httpx.Client(timeout=60) as client:
        url = create(client, tusedge_server, {"Upload-Length": str(len(first) + len(second))})

        def sha1(data: bytes) -> str:
            return "sha1 " + base64.b64encode(hashlib.sha1(data).digest()).decode()

        ok = client.patch(url, content=first, headers={**OCTETS, "Upload-Offset": "0", "Upload-Checksum": sha1(first)})
        assert ok.status_code == 204
        bad = client.patch(
            url,
            content=second,
            headers={**OCTETS, "Upload-Offset": str(len(first)), "Upload-Checksum": sha1(second[:-1])},
        )
        assert bad.status_code == 460, bad.text
        assert client.head(url, headers=TUS).headers["Upload-Offset"] == str(len(first))
        data_file = tusedge_server.data_dir / "uploads" / url.rsplit("/", 1)[1]
        with data_file.open("rb") as fh:
            assert fh.read(len(first)) == first
        good = client.patch(
            url, content=second, headers={**OCTETS, "Upload-Offset": str(len(first)), "Upload-Checksum": sha1(second)}
        )
        assert good.status_code == 204
        assert client.get(url).content == first + second


@pytest.mark.parametrize("algorithm", ["sha256", "sha1", "md5", "sha512", "crc32"])
def test_patch_checksum_algorithms_accepted(tusedge_server: ServerProcess, algorithm: str) -> None:
    """sum.ok: every advertised algorithm verifies a correct digest."""
    data = os.urandom(100_000)
    if algorithm == "crc32":
        import zlib

        raw = zlib.crc32(data).to_bytes(4, "big")
    else:
        raw = hashlib.new(algorithm, data).digest()
    header = f"{algorithm} {base64.b64encode(raw).decode()}"
    with httpx.Client(timeout=30) as client:
        options = client.options(tusedge_server.url)
        assert algorithm in options.headers["Tus-Checksum-Algorithm"].split(",")
        url = create(client, tusedge_server, {"Upload-Length": str(len(data))})
        response = client.patch(url, content=data, headers={**OCTETS, "Upload-Offset": "0", "Upload-Checksum": header})
        assert response.status_code == 204, response.text


def test_whole_file_digest_verified_on_completion(tusedge_server: ServerProcess) -> None:
    """A digest declared at creation (metadata ``checksum``) is checked when the upload completes; HEAD
    says ``Upload-Checksum-Status: verified`` and the file is served."""
    data = os.urandom(5 * MiB + 3)
    with httpx.Client(timeout=60) as client:
        url = create(
            client, tusedge_server, {"Upload-Length": str(len(data)), "Upload-Metadata": digest_metadata(data)}
        )
        assert client.head(url, headers=TUS).headers["Upload-Checksum-Status"] == "pending"
        client.patch(url, content=data[:MiB], headers={**OCTETS, "Upload-Offset": "0"})
        client.patch(url, content=data[MiB:], headers={**OCTETS, "Upload-Offset": str(MiB)})
        assert client.head(url, headers=TUS).headers["Upload-Checksum-Status"] == "verified"
        assert client.get(url).content == data


def test_whole_file_digest_mismatch_marks_upload_failed(tusedge_server: ServerProcess) -> None:
    """A mismatch marks the upload failed, visible on HEAD and GET, never silently accepted."""
    data = os.urandom(2 * MiB)
    with httpx.Client(timeout=60) as client:
        url = create(
            client, tusedge_server, {"Upload-Length": str(len(data)), "Upload-Metadata": digest_metadata(b"other")}
        )
        client.patch(url, content=data, headers={**OCTETS, "Upload-Offset": "0"})
        head = client.head(url, headers=TUS)
        assert head.headers["Upload-Checksum-Status"] == "mismatch"
        get = client.get(url)
        assert get.status_code == 422 and "digest" in get.text


def test_whole_file_digest_of_concatenated_final_is_verified(tusedge_server: ServerProcess) -> None:
    """The whole-file digest works for a final upload: it is checked on the merged file."""
    parts = [os.urandom(MiB + 1), os.urandom(2 * MiB), os.urandom(17)]
    whole = b"".join(parts)
    with httpx.Client(timeout=60) as client:
        urls = upload_partials(client, tusedge_server, parts)
        good = create(
            client,
            tusedge_server,
            {"Upload-Concat": "final;" + " ".join(urls), "Upload-Metadata": digest_metadata(whole)},
        )
        head = client.head(good, headers=TUS)
        assert head.headers["Upload-Checksum-Status"] == "verified"
        assert client.get(good).content == whole


def test_whole_file_digest_mismatch_of_a_concatenated_final_marks_it_failed(tusedge_server: ServerProcess) -> None:
    """A final whose parts, in order, are not the declared file (here: declared in the other order) fails
    its check, though every part's own bytes are intact (the digest through the parts keeps their order)."""
    parts = [os.urandom(MiB), os.urandom(MiB + 5)]
    with httpx.Client(timeout=60) as client:
        urls = upload_partials(client, tusedge_server, parts)
        bad = create(
            client,
            tusedge_server,
            {"Upload-Concat": "final;" + " ".join(urls), "Upload-Metadata": digest_metadata(parts[1] + parts[0])},
        )
        assert client.head(bad, headers=TUS).headers["Upload-Checksum-Status"] == "mismatch"
        assert client.get(bad).status_code == 422


def test_a_final_declared_early_fails_at_once_when_one_of_its_parts_is_terminated(
    tusedge_server: ServerProcess,
) -> None:
    """concatenation-unfinished: a final waiting for a part that is then deleted can never be complete. It
    fails at once (HEAD: Upload-Checksum-Status failed; GET 422 with the reason) instead of staying
    unfinished until it expires; the other part is untouched."""
    data = os.urandom(2 * MiB + 3)
    half = len(data) // 2
    with httpx.Client(timeout=60) as client:
        urls = [
            create(client, tusedge_server, {"Upload-Length": str(length), "Upload-Concat": "partial"})
            for length in (half, len(data) - half)
        ]
        assert client.patch(urls[0], content=data[:half], headers={**OCTETS, "Upload-Offset": "0"}).status_code == 204
        final = create(
            client,
            tusedge_server,
            {"Upload-Concat": "final;" + " ".join(urls), "Upload-Metadata": digest_metadata(data)},
        )
        assert client.head(final, headers=TUS).headers["Upload-Checksum-Status"] == "pending"
        assert client.delete(urls[1], headers=TUS).status_code == 204
        assert client.head(final, headers=TUS).headers["Upload-Checksum-Status"] == "failed"
        answer = client.get(final)
        assert answer.status_code == 422 and "partial upload" in answer.text, answer.text
        assert client.head(urls[0], headers=TUS).headers["Upload-Offset"] == str(half)


def test_declared_digest_with_unsupported_algorithm_is_400(tusedge_server: ServerProcess) -> None:
    meta = "checksum " + base64.b64encode(b"whirlpool AAAA").decode()
    with httpx.Client(timeout=30) as client:
        response = client.post(tusedge_server.url, headers={**TUS, "Upload-Length": "5", "Upload-Metadata": meta})
    assert response.status_code == 400 and "whirlpool" in response.text


def test_concat_final_rejects_foreign_unknown_and_non_partial_uploads(tusedge_server: ServerProcess) -> None:
    """concat.bad-parts: unknown ids (404), uploads not created as partial (400), URLs outside our base
    path (400) are refused with a reason, and nothing is created."""
    with httpx.Client(timeout=30) as client:
        plain = create(client, tusedge_server, {"Upload-Length": "3"})
        cases = {
            "final;" + tusedge_server.url + "0" * 32: 404,
            "final;" + plain: 400,
            "final;/elsewhere/" + plain.rsplit("/", 1)[1]: 400,
            "final;http://other.example/files/../x": 400,
        }
        for header, status in cases.items():
            response = client.post(tusedge_server.url, headers={**TUS, "Upload-Concat": header})
            assert response.status_code == status, (header, response.status_code, response.text)
            assert response.text.strip() and "Location" not in response.headers


def test_partials_removed_after_merge_unless_kept(server_factory: ServerFactory) -> None:
    """Partials are removed after a successful merge (410 afterwards); ``--keep-partials`` keeps them
    so they can be reused in another final upload."""
    for flags, kept in (((), False), (("--keep-partials",), True)):
        server = server_factory(*flags)
        with httpx.Client(timeout=30) as client:
            urls = upload_partials(client, server, [b"abc", b"def"])
            final = create(client, server, {"Upload-Concat": "final;" + " ".join(urls)})
            assert client.get(final).content == b"abcdef"
            statuses = {client.head(url, headers=TUS).status_code for url in urls}
            assert statuses == ({200} if kept else {410})
            if kept:
                again = create(client, server, {"Upload-Concat": "final;" + " ".join(reversed(urls))})
                assert client.get(again).content == b"defabc"
