"""Several tusedge nodes sharing state in PostgreSQL and one upload folder (as behind a load balancer with
a shared store): an upload moves between nodes, one writer per upload holds across nodes, a quiet holder
on one node gives way to a client reconnecting to another, a killed node's locks are gone at once, and
parts uploaded to different nodes are joined. Real PostgreSQL, real server processes."""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx
from fault_proxy import FaultProxy
from rawhttp import (
    BodySender,
    RawRequest,
    create_upload,
    download,
    head_offset,
    patch,
    patch_headers,
    poll_offset,
    sha256,
)
from server_process import ROOT, ServerFactory, ServerProcess

KIB = 1024
MIB = 1024 * KIB
TUS = {"Tus-Resumable": "1.0.0"}


def two_nodes(server_factory: ServerFactory, tmp_path: Path, postgres_url: str, *flags: str) -> list[ServerProcess]:
    shared = tmp_path / "shared-store"
    return [server_factory("--database-url", postgres_url, *flags, data_dir=shared) for _ in range(2)]


def on(node: ServerProcess, url: str) -> str:
    """The same upload URL, sent to another node."""
    path = url.split("/", 3)[3]
    return f"{node.origin}/{path}"


def test_an_upload_started_on_one_node_continues_and_is_served_on_another(
    server_factory: ServerFactory, tmp_path: Path, postgres_url: str
) -> None:
    a, b = two_nodes(server_factory, tmp_path, postgres_url)
    data = os.urandom(3 * MIB + 17)
    url = create_upload(a.url, len(data))
    assert patch(url, 0, data[:MIB]).status_code == 204
    assert head_offset(on(b, url)) == MIB
    assert patch(on(b, url), MIB, data[MIB:]).status_code == 204
    assert sha256(download(url)) == sha256(data)
    assert httpx.delete(on(b, url), headers=TUS).status_code == 204
    assert httpx.head(url, headers=TUS).status_code in (404, 410)


def test_a_second_patch_on_another_node_is_refused_without_interleaving(
    server_factory: ServerFactory, tmp_path: Path, postgres_url: str
) -> None:
    """One writer per upload across nodes: while a PATCH streams into node A, a PATCH to node B waits at
    most --lock-timeout-s and is refused; its bytes are never written."""
    a, b = two_nodes(server_factory, tmp_path, postgres_url, "--lock-timeout-s", "2", "--stale-lock-s", "1")
    data, intruder = os.urandom(4_000_000), os.urandom(1_000_000)
    url = create_upload(a.url, len(data))
    with RawRequest("PATCH", url, patch_headers(0, len(data))) as first:
        sender = BodySender(first, data, rate_bytes_per_s=256 * KIB, chunk_bytes=16 * KIB).start()
        time.sleep(0.5)
        second = patch(on(b, url), 0, intruder)
        assert not sender.done and sender.error is None
        sender.stop()
        assert second.status_code in (409, 423), (second.status_code, second.text)
        first.send(data[sender.sent :])
        response = first.read_response()
    assert response.status == 204, response
    assert sha256(download(on(b, url))) == sha256(data)


def test_a_quiet_holder_on_one_node_gives_way_to_a_client_reconnecting_to_another(
    server_factory: ServerFactory, tmp_path: Path, postgres_url: str
) -> None:
    """The client's connection to node A went silent; it reconnects through node B, whose request asks A's
    (LISTEN/NOTIFY) to let go. A commits what it received and releases well before the lock timeout."""
    a, b = two_nodes(server_factory, tmp_path, postgres_url, "--lock-timeout-s", "5", "--stale-lock-s", "1")
    data, sent = os.urandom(3_000_000), 700_001
    url = create_upload(a.url, len(data))
    with RawRequest("PATCH", url, patch_headers(0, len(data))) as stale:
        stale.send(data[:sent])
        time.sleep(0.3)
        seen = head_offset(on(b, url))
        started = time.monotonic()
        takeover = patch(on(b, url), seen, data[seen:])
        waited = time.monotonic() - started
        assert takeover.status_code == 409 and str(sent) in takeover.text, (takeover.status_code, takeover.text)
        assert waited < 4, f"node B waited {waited:.2f} s behind a quiet holder on node A"
        old = stale.read_response(timeout_s=5)
        assert old.status == 423 and b"interrupted" in old.body, old
    assert patch(on(b, url), sent, data[sent:]).status_code == 204
    assert sha256(download(url)) == sha256(data)


def test_a_node_killed_mid_patch_leaves_no_lock_and_another_node_continues(
    server_factory: ServerFactory, tmp_path: Path, postgres_url: str
) -> None:
    a, b = two_nodes(
        server_factory, tmp_path, postgres_url, "--lock-timeout-s", "3", "--commit-interval-bytes", "256KiB",
        "--commit-interval-s", "0", "--write-buffer-bytes", "256KiB",
    )  # fmt: skip
    data = os.urandom(6 * MIB)
    url = create_upload(a.url, len(data))
    with RawRequest("PATCH", url, patch_headers(0, len(data))) as doomed:
        doomed.send(data[: 2 * MIB])
        poll_offset(on(b, url), MIB)  # node B sees A's commits as they happen
        a.kill()
    offset = head_offset(on(b, url))
    assert 0 < offset <= 2 * MIB
    started = time.monotonic()
    response = patch(on(b, url), offset, data[offset:])
    assert response.status_code == 204, (response.status_code, response.text)
    assert time.monotonic() - started < 3  # the dead node's lock did not have to time out
    assert sha256(download(on(b, url))) == sha256(data)


def test_parts_uploaded_to_different_nodes_are_joined(
    server_factory: ServerFactory, tmp_path: Path, postgres_url: str
) -> None:
    """tus-style parallel upload spread by a load balancer: partial uploads on A and B, the final on B."""
    a, b = two_nodes(server_factory, tmp_path, postgres_url)
    data = os.urandom(5 * MIB + 3)
    halves = [data[: len(data) // 2], data[len(data) // 2 :]]
    parts = []
    for node, half in zip((a, b), halves, strict=True):
        created = httpx.post(node.url, headers={**TUS, "Upload-Length": str(len(half)), "Upload-Concat": "partial"})
        assert created.status_code == 201
        part = str(httpx.URL(node.url).join(created.headers["Location"]))
        assert patch(part, 0, half).status_code == 204
        parts.append(part)
    final = httpx.post(b.url, headers={**TUS, "Upload-Concat": "final;" + " ".join(parts)})
    assert final.status_code == 201, final.text
    url = str(httpx.URL(b.url).join(final.headers["Location"]))
    deadline = time.monotonic() + 30
    while "Upload-Offset" not in httpx.head(on(a, url), headers=TUS).headers:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert sha256(download(on(a, url))) == sha256(data)


def test_the_client_resumes_through_a_load_balancer_on_another_node(
    server_factory: ServerFactory, tmp_path: Path, postgres_url: str
) -> None:
    """``tusedge upload --parallel 4`` through a load balancer (a proxy here) to node A; the client is killed
    and node A dies; the balancer now sends everything to node B, and the same command resumes there from
    the offsets A committed, without sending those bytes again."""
    a, b = two_nodes(server_factory, tmp_path, postgres_url)
    source, store = tmp_path / "big.bin", tmp_path / "store.db"
    data = os.urandom(24 * MIB)
    source.write_bytes(data)
    with FaultProxy(a.port) as balancer:
        args = [sys.executable, "-m", "tusedge", "upload", str(source), f"{balancer.url}/files/", "--parallel", "4",
                "--chunk-size", "1MiB", "--store", str(store)]  # fmt: skip
        first = subprocess.Popen([*args, "--limit-rate", "8MiB"], cwd=ROOT, stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE)  # fmt: skip
        deadline = time.monotonic() + 60
        while len(balancer.requests("PATCH")) < 8:
            assert time.monotonic() < deadline and first.poll() is None
            time.sleep(0.05)
        first.kill()
        first.wait(30)
        a.kill()
        balancer.upstream_port = b.port
        done = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    resumed = int(re.search(r"\((\d+) bytes\) already on the server", done.stderr).group(1))  # type: ignore[union-attr]
    sent = int(re.search(r"sent \((\d+) bytes\)", done.stderr).group(1))  # type: ignore[union-attr]
    assert resumed > 0 and sent == len(data) - resumed
    url = done.stdout.strip().replace(str(balancer.port), str(b.port))
    assert hashlib.sha256(httpx.get(url, timeout=60).content).hexdigest() == sha256(data)


def test_the_conformance_suite_passes_against_a_node_with_postgresql_state(
    server_factory: ServerFactory, tmp_path: Path, postgres_url: str
) -> None:
    """Every tus rule (and ours) holds with PostgreSQL state and locks, uploads expiring within seconds."""
    node = server_factory("--database-url", postgres_url, "--max-size-bytes", str(10**9), "--expiry-s", "2",
                          "--reaper-interval-s", "0.5")  # fmt: skip
    done = subprocess.run([sys.executable, "-m", "conformance", node.url, "--ours", "--json"], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    results = json.loads(done.stdout)
    failed = [r for r in results["results"] if r["status"] == "FAIL"]
    assert done.returncode == 0 and not failed, failed
    assert sum(r["status"] == "PASS" for r in results["results"]) >= 40
