"""End to end: the real tus-js-client (its Node build) uploads to a real tusedge server.

``tests/js/upload.mjs`` drives tus-js-client and reports on stdout, one JSON object a line: events
(``{"event": "created", "url": ...}``, ``{"event": "resumed", "url": ..., "resumedFrom": N}``) and one final
line (``{"ok": true, ...}`` exit 0, ``{"aborted": true, ...}`` exit 3, ``{"ok": false, "error": ...}`` exit 1).
The tests check what the server ends up holding with plain HTTP (HEAD with ``Tus-Resumable``, and GET).

Node and npm are required, not optional: a machine without them fails these tests with a clear message.
"""

from __future__ import annotations

import time
from pathlib import Path

from js_harness import (
    EXIT_ABORTED,
    MiB,
    TusServer,
    UploadProcess,
    download_sha256,
    make_random_file,
    parse_metadata,
    run_upload,
    tus_head,
    upload_offset,
)

# ---------------------------------------------------------------------------------------------------------
# Tests


def test_tus_js_client_uploads_file_and_download_matches(
    node_executable: str, tusedge_server: TusServer, tmp_path: Path
) -> None:
    size = 20 * MiB + 12_345  # not a multiple of the chunk size: the last PATCH is a short one
    source = tmp_path / "payload.bin"
    digest = make_random_file(source, size)
    filename = "résumé ü 20MB.bin"  # non-ASCII and a space: only base64 keeps it intact

    result = run_upload(
        node_executable,
        ["--endpoint", tusedge_server.url, "--file", str(source), "--chunk-size", str(5 * MiB),
         "--metadata", f"filename={filename}", "--metadata", "filetype=application/octet-stream"],
        tmp_path,
        timeout=180,
    )  # fmt: skip

    assert result.returncode == 0 and result.final.get("ok") is True, result.describe(tusedge_server)
    url = result.final["url"]
    assert result.final["bytesUploaded"] == size, result.describe(tusedge_server)
    assert [event["url"] for event in result.events("created")] == [url], result.describe(tusedge_server)

    head = tus_head(url)
    assert head.headers["Upload-Offset"] == str(size)
    assert head.headers["Upload-Length"] == str(size)
    metadata = parse_metadata(head.headers.get("Upload-Metadata", ""))
    assert metadata.get("filename") == filename, head.headers.get("Upload-Metadata")
    assert metadata.get("filetype") == "application/octet-stream", head.headers.get("Upload-Metadata")

    assert download_sha256(url) == (size, digest)


def test_tus_js_client_resumes_previous_upload(node_executable: str, tusedge_server: TusServer, tmp_path: Path) -> None:
    size = 12 * MiB + 777
    source = tmp_path / "payload.bin"
    digest = make_random_file(source, size)
    store = tmp_path / "tus-url-store.json"  # where the first run leaves the URL for the second one
    common = ["--endpoint", tusedge_server.url, "--file", str(source), "--chunk-size", str(MiB), "--store", str(store)]

    # First run: stop after ~8 MiB were sent, as if the client had crashed.
    first = run_upload(node_executable, [*common, "--abort-after-bytes", str(8 * MiB)], tmp_path, timeout=120)
    assert first.returncode == EXIT_ABORTED and first.final.get("aborted") is True, first.describe(tusedge_server)
    url = first.final["url"]
    assert isinstance(url, str) and url, first.describe(tusedge_server)
    assert first.final["bytesSent"] >= 8 * MiB

    # The server kept what it had accepted: at least the 7 chunks before the one in flight at the abort.
    offset_before = upload_offset(url)
    assert 7 * MiB <= offset_before < size, f"HEAD {url}: Upload-Offset {offset_before}"

    # Second run: finds the URL in the store, asks the server for the offset and carries on from there.
    second = run_upload(node_executable, [*common, "--resume"], tmp_path, timeout=120)
    assert second.returncode == 0 and second.final.get("ok") is True, second.describe(tusedge_server)
    assert second.final["url"] == url, second.describe(tusedge_server)
    assert second.events("created") == [], "the second run created a new upload instead of resuming"
    resumed = second.events("resumed")
    assert resumed and resumed[0]["url"] == url, second.describe(tusedge_server)
    resumed_from = second.final["resumedFrom"]
    assert resumed_from == resumed[0]["resumedFrom"]
    assert resumed_from > 0
    assert resumed_from >= offset_before, f"offset went back from {offset_before} to {resumed_from}"

    assert upload_offset(url) == size
    assert download_sha256(url) == (size, digest)


def test_tus_js_client_survives_server_restart(node_executable: str, tusedge_server: TusServer, tmp_path: Path) -> None:
    size = 30 * MiB + 4_321
    source = tmp_path / "payload.bin"
    digest = make_random_file(source, size)
    args = [
        "--endpoint", tusedge_server.url, "--file", str(source), "--chunk-size", str(MiB),
        # ~20 s of retries in all: enough for the server to come back; reset after every chunk that gets through.
        "--retry-delays", "0,200,500,1000,1000,2000,2000,3000,3000,5000",
        # A slow client (>= 3 s for 30 chunks), so the restart surely lands in the middle of the upload.
        "--patch-delay-ms", "100",
    ]  # fmt: skip

    with UploadProcess(node_executable, args, tmp_path / "upload.stderr") as upload:
        url = upload.wait_for_event("created", timeout=30)["url"]

        # Let a few MiB arrive, then kill -9 the server mid-upload and start it again on the same port.
        deadline = time.monotonic() + 60
        offset_before_kill = upload_offset(url)
        while offset_before_kill < 4 * MiB:
            assert upload.running(), f"upload.mjs ended early: {upload.result_after_exit()}"
            assert time.monotonic() < deadline, f"only {offset_before_kill} bytes arrived within 60 s"
            time.sleep(0.05)
            offset_before_kill = upload_offset(url)
        assert offset_before_kill < size, "the upload finished before the server could be killed"
        tusedge_server.kill()
        tusedge_server.start()

        result = upload.wait(timeout=180)

    assert result.returncode == 0 and result.final.get("ok") is True, result.describe(tusedge_server)
    assert result.final["url"] == url
    assert len(result.events("created")) == 1, "the upload was created anew after the restart: " + result.describe(
        tusedge_server
    )
    resumed = result.events("resumed")
    assert resumed, "the client never resumed (HEAD) after the restart: " + result.describe(tusedge_server)
    assert all(event["url"] == url for event in resumed)
    # What the server had acknowledged before kill -9 (data handed to the OS) must still be there after it.
    assert resumed[0]["resumedFrom"] >= offset_before_kill > 0, result.describe(tusedge_server)

    assert upload_offset(url) == size
    assert download_sha256(url) == (size, digest)
