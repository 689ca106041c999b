"""A final upload declared early (concatenation-unfinished) can never complete once one of its parts is gone
before it got its bytes. The client must not report such an upload done: resuming, it starts anew."""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path

import httpx
from server_process import ServerProcess
from upload_files import random_file, served_sha256

from tusedge.client import UploadOptions, upload_sync
from tusedge.client.fingerprint import fingerprint
from tusedge.client.resume import ResumeStore, StoredUpload

MIB = 1024 * 1024
TUS = {"Tus-Resumable": "1.0.0"}
OCTETS = "application/offset+octet-stream"


def test_a_resumed_final_whose_part_is_gone_is_uploaded_anew_not_reported_done(
    tusedge_server: ServerProcess, tmp_path: Path
) -> None:
    source = tmp_path / "file.bin"
    digest = random_file(source, 3 * MIB + 7)
    data = source.read_bytes()
    half = len(data) // 2
    whole = base64.b64encode(hashlib.sha256(data).digest()).decode()
    declared = base64.b64encode(f"sha256 {whole}".encode()).decode()
    with httpx.Client(headers=TUS) as client:  # what a run killed after declaring its final left behind
        first = client.post(tusedge_server.url, headers={"Upload-Length": str(half), "Upload-Concat": "partial"})
        second = client.post(
            tusedge_server.url, headers={"Upload-Length": str(len(data) - half), "Upload-Concat": "partial"}
        )
        urls = [first.headers["Location"], second.headers["Location"]]
        assert client.patch(urls[0], content=data[:half], headers={"Upload-Offset": "0", "Content-Type": OCTETS})
        final = client.post(
            tusedge_server.url,
            headers={"Upload-Concat": "final;" + " ".join(urls), "Upload-Metadata": f"checksum {declared}"},
        )
        assert final.status_code == 201, final.text
        assert client.delete(urls[1]).status_code == 204  # the unfinished part is gone (deleted, expired)
    store = ResumeStore(tmp_path / "store.db")
    store.put(fingerprint(source), tusedge_server.url, StoredUpload(urls, final=final.headers["Location"]))

    result = upload_sync(source, tusedge_server.url, UploadOptions(parallel=2, verify_wait_s=5), store=store)

    assert result.url != final.headers["Location"] and result.resumed_from == 0
    assert result.digest_status == "verified"
    assert served_sha256(result.url) == digest
