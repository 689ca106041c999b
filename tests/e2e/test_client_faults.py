"""The client under faults, against a real server: its process killed (SIGKILL, SIGINT, SIGTERM) and run
again, the server killed and restarted mid-upload, a server answering 5xx for a while, bytes damaged in
transit, a server that never answers."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from client_progress import server_offsets, settled_offsets, wait_for_progress
from fault_proxy import DamageFirst, FaultProxy, SeenRequest
from server_process import ROOT, ServerFactory, ServerProcess
from upload_files import InBackground, random_file, served_sha256

from tusedge.client.errors import GaveUp
from tusedge.client.fingerprint import fingerprint
from tusedge.client.resume import ResumeStore
from tusedge.client.retry import RetryPolicy
from tusedge.client.uploader import UploadOptions, upload_sync

MiB = 1024 * 1024
TUS = {"Tus-Resumable": "1.0.0"}


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "tusedge", "upload", *args]


def done_figures(stderr: str) -> tuple[int, int]:
    """(bytes already on the server, bytes sent) from the CLI's closing line."""
    resumed = re.search(r"\((\d+) bytes\) already on the server", stderr)
    sent = re.search(r"sent \((\d+) bytes\)", stderr)
    assert resumed and sent, stderr
    return int(resumed.group(1)), int(sent.group(1))


def test_cli_killed_with_sigkill_mid_parallel_upload_resumes_without_resending(
    tusedge_server: ServerProcess, tmp_path: Path
) -> None:
    """SIGKILL the CLI uploading in 4 parts; the same command again continues from the server's offsets:
    it sends exactly the bytes the server did not have, and the result is the file."""
    source, store = tmp_path / "big.bin", tmp_path / "store.db"
    size = 48 * MiB
    digest = random_file(source, size)
    args = [str(source), tusedge_server.url, "--parallel", "4", "--chunk-size", "2MiB", "--store", str(store)]
    proc = subprocess.Popen(cli(*args, "--limit-rate", "8MiB"), cwd=ROOT, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
    try:
        wait_for_progress(store, source, tusedge_server.url, 12 * MiB, proc)
    finally:
        proc.kill()
        proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    had = settled_offsets(store, source, tusedge_server.url)
    assert len(had) == 4 and 12 * MiB <= sum(had) < size
    again = subprocess.run(cli(*args), cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    resumed, sent = done_figures(again.stderr)
    assert resumed == sum(had)
    assert sent == size - sum(had)  # nothing the server had was sent again
    assert served_sha256(again.stdout.strip()) == digest
    assert ResumeStore(store).get(fingerprint(source), tusedge_server.url) is None  # forgotten once done


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_cli_interrupted_exits_130_or_143_and_the_same_command_resumes(
    tusedge_server: ServerProcess, tmp_path: Path, sig: signal.Signals, code: int
) -> None:
    source, store = tmp_path / "file.bin", tmp_path / "store.db"
    size = 24 * MiB
    digest = random_file(source, size)
    args = [str(source), tusedge_server.url, "--chunk-size", "1MiB", "--store", str(store)]
    proc = subprocess.Popen(cli(*args, "--limit-rate", "4MiB"), cwd=ROOT, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
    wait_for_progress(store, source, tusedge_server.url, 3 * MiB, proc)
    proc.send_signal(sig)
    _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == code, stderr
    assert "interrupted; run the same command again to resume" in stderr
    again = subprocess.run(cli(*args), cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    resumed, sent = done_figures(again.stderr)
    assert resumed >= 3 * MiB and sent == size - resumed
    assert served_sha256(again.stdout.strip()) == digest


def test_client_retries_through_a_server_restart_and_finishes(server_factory: ServerFactory, tmp_path: Path) -> None:
    """kill -9 the server mid-upload and start it again a second later: the running client retries with
    backoff, continues from the server's offsets, and finishes."""
    server = server_factory()
    source, store_path = tmp_path / "file.bin", tmp_path / "store.db"
    size = 32 * MiB
    digest = random_file(source, size)
    options = UploadOptions(parallel=2, chunk_size=MiB, rate_limit=8 * MiB,
                            retry=RetryPolicy(max_attempts=20, base_delay_s=0.2, max_delay_s=1.0))  # fmt: skip
    uploading = InBackground(lambda: upload_sync(source, server.url, options, store=ResumeStore(store_path)))
    deadline = time.monotonic() + 60
    while sum(server_offsets(store_path, source, server.url)) < 8 * MiB:
        assert time.monotonic() < deadline and uploading.is_alive()
        time.sleep(0.05)
    server.kill()
    time.sleep(1.0)
    server.start()
    result = uploading.result()
    assert result.retries > 0
    assert served_sha256(result.url) == digest


def test_client_backs_off_through_5xx_answers_and_completes(tusedge_server: ServerProcess, tmp_path: Path) -> None:
    """A server that answers 503 to three PATCHes in a row, then recovers: the client waits between tries
    (backoff), HEADs for the offset each time, and completes."""
    failures = 3

    def answer(request: SeenRequest) -> int | None:
        patches = [r for r in proxy.seen if r.method == "PATCH"]
        return 503 if request.method == "PATCH" and 2 <= len(patches) <= 1 + failures else None

    source = tmp_path / "file.bin"
    digest = random_file(source, 6 * MiB)
    with FaultProxy(tusedge_server.port, answer=answer) as proxy:
        options = UploadOptions(chunk_size=MiB, retry=RetryPolicy(base_delay_s=0.1, max_delay_s=0.5))
        result = upload_sync(source, f"{proxy.url}/files/", options, store=ResumeStore(tmp_path / "s.db"))
    injected = [r for r in proxy.seen if r.answered_by_proxy == 503]
    assert len(injected) == failures and result.retries == failures
    after_failure = [proxy.seen[proxy.seen.index(r) + 1] for r in injected]
    assert all(r.method == "HEAD" for r in after_failure)  # re-HEAD, then continue from the server's offset
    assert all(later.at - failed.at >= 0 for failed, later in zip(injected, after_failure, strict=True))
    assert served_sha256(result.url.replace(str(proxy.port), str(tusedge_server.port))) == digest


def test_client_resends_a_patch_damaged_in_transit_after_460(tusedge_server: ServerProcess, tmp_path: Path) -> None:
    """The Upload-Checksum of each PATCH lets the server refuse bytes damaged on the way (460); the client
    sends that chunk again and the result is intact."""
    damage = DamageFirst("PATCH")
    damaged = damage.damaged

    source = tmp_path / "file.bin"
    digest = random_file(source, 5 * MiB)
    with FaultProxy(tusedge_server.port, damage=damage) as proxy:
        options = UploadOptions(chunk_size=2 * MiB, retry=RetryPolicy(base_delay_s=0.05))
        result = upload_sync(source, f"{proxy.url}/files/", options, store=ResumeStore(tmp_path / "s.db"))
    # CRC-32 per PATCH: the whole file's SHA-256 is verified too (checksums.choose)
    assert damaged and damaged[0].headers["upload-checksum"].startswith("crc32 ")
    assert result.retries == 1 and result.checksum == "crc32" and result.digest_status == "verified"
    assert served_sha256(result.url.replace(str(proxy.port), str(tusedge_server.port))) == digest


def test_cli_gives_up_with_exit_4_when_the_server_never_answers(tmp_path: Path) -> None:
    source = tmp_path / "file.bin"
    random_file(source, MiB)
    with FaultProxy(9, answer=lambda request: 503) as proxy:  # every request: 503
        done = subprocess.run(cli(str(source), f"{proxy.url}/files/", "--retries", "2", "--no-resume"),
                              cwd=ROOT, capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 4, done.stderr
    assert "gave up after 2 retries" in done.stderr and "503" in done.stderr
    assert len(proxy.seen) == 3


def test_client_gives_up_after_the_retry_budget(tmp_path: Path) -> None:
    """Nothing listens: the client stops after max_attempts retries with GaveUp naming the network error."""
    source = tmp_path / "file.bin"
    random_file(source, 1000)
    with FaultProxy(9) as proxy:  # nothing listens upstream: every request fails to connect
        pass
    options = UploadOptions(retry=RetryPolicy(max_attempts=3, base_delay_s=0.01), resume=False)
    with pytest.raises(GaveUp, match="gave up after 3 retries") as caught:
        upload_sync(source, f"{proxy.url}/files/", options)
    assert isinstance(caught.value.__cause__, httpx.ConnectError)


def test_a_second_run_of_the_same_upload_meanwhile_is_refused(tusedge_server: ServerProcess, tmp_path: Path) -> None:
    """Two processes uploading the same file to the same endpoint would fight over its parts: the second
    stops at once and says why; the first finishes."""
    source, store = tmp_path / "file.bin", tmp_path / "store.db"
    digest = random_file(source, 8 * MiB)
    args = [str(source), tusedge_server.url, "--parallel", "2", "--chunk-size", "1MiB", "--store", str(store)]
    first = subprocess.Popen(cli(*args, "--limit-rate", "4MiB"), cwd=ROOT, text=True,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
    wait_for_progress(store, source, tusedge_server.url, MiB, first)
    second = subprocess.run(cli(*args), cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert second.returncode == 1 and "another process is uploading this file" in second.stderr
    out, err = first.communicate(timeout=120)
    assert first.returncode == 0, err
    assert served_sha256(out.strip()) == digest


def test_a_file_that_shrinks_during_the_upload_stops_it_with_a_clear_message(
    tusedge_server: ServerProcess, tmp_path: Path
) -> None:
    source, store = tmp_path / "file.bin", tmp_path / "store.db"
    random_file(source, 16 * MiB)
    args = [str(source), tusedge_server.url, "--chunk-size", "1MiB", "--store", str(store), "--no-digest"]
    proc = subprocess.Popen(cli(*args, "--limit-rate", "4MiB"), cwd=ROOT, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
    wait_for_progress(store, source, tusedge_server.url, 2 * MiB, proc)
    os.truncate(source, 4 * MiB)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 1, stderr
    assert "is shorter than when the upload started" in stderr
