"""Prometheus metrics at /metrics, read with prometheus_client's own parser after real uploads; with
--workers 2 the figures cover both workers whichever one answers."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import httpx
from metrics_samples import samples
from rawhttp import create_upload, patch
from server_process import ServerFactory

TUS = {"Tus-Resumable": "1.0.0"}


def test_metrics_count_uploads_bytes_requests_and_removals(server_factory: ServerFactory) -> None:
    server = server_factory()
    data = os.urandom(300_000)
    url = create_upload(server.url, len(data))
    assert patch(url, 0, data[:100_000]).status_code == 204
    assert patch(url, 100_000, data[100_000:]).status_code == 204
    assert patch(url, 0, b"x").status_code == 409
    gone = create_upload(server.url, 10)
    assert httpx.delete(gone, headers=TUS).status_code == 204
    parts = []
    for _ in range(2):
        created = httpx.post(server.url, headers={**TUS, "Upload-Length": "3", "Upload-Concat": "partial"})
        parts.append(created.headers["Location"])
        assert patch(parts[-1], 0, b"abc").status_code == 204
    final = httpx.post(server.url, headers={**TUS, "Upload-Concat": "final;" + " ".join(parts)})
    assert final.status_code == 201
    m = samples(server.origin)
    assert m[("tusedge_uploads_created_total", (("kind", "single"),))] == 2
    assert m[("tusedge_uploads_created_total", (("kind", "partial"),))] == 2
    assert m[("tusedge_uploads_created_total", (("kind", "final"),))] == 1
    assert m[("tusedge_bytes_received_total", ())] == 300_000 + 6
    assert m[("tusedge_uploads_completed_total", ())] == 1 + 2 + 1  # the single, both parts, the final
    assert m[("tusedge_uploads_removed_total", (("reason", "terminated"),))] == 1
    assert m[("tusedge_requests_total", (("method", "PATCH"), ("status", "204")))] == 4
    assert m[("tusedge_requests_total", (("method", "PATCH"), ("status", "409")))] == 1
    assert m[("tusedge_merge_duration_seconds_count", ())] == 1
    assert m[("tusedge_patches_in_progress", ())] == 0


def test_unknown_methods_do_not_mint_label_values(server_factory: ServerFactory) -> None:
    server = server_factory()
    for verb in ("BREW", "WHEN", "WHY"):
        httpx.request(verb, server.url)
    m = samples(server.origin)
    assert not [key for key in m if ("method", "BREW") in key[1]]
    assert (
        sum(v for (name, labels), v in m.items() if name == "tusedge_requests_total" and ("method", "OTHER") in labels)
        == 3
    )


def test_metrics_add_up_across_workers(server_factory: ServerFactory) -> None:
    server = server_factory("--workers", "2")
    for _ in range(12):  # a new connection each: the kernel spreads them over both workers
        with httpx.Client() as client:
            assert client.post(server.url, headers={**TUS, "Upload-Length": "1"}).status_code == 201
    for _ in range(4):  # whichever worker answers, it answers for both
        assert samples(server.origin)[("tusedge_uploads_created_total", (("kind", "single"),))] == 12
    (folder,) = Path(tempfile.gettempdir()).glob(f"tusedge-metrics-{server.pid}-*")
    assert not (server.data_dir / "metrics").exists()  # node-local, not in the (maybe shared) data folder
    writers = {path.stem.rsplit("_", 1)[-1] for path in folder.glob("counter_*.db")}
    assert len(writers) == 2  # both workers counted (12 connections all to one worker: 1 in 2048)
    server.stop()
    assert not folder.exists()  # removed when the server ends


def test_metrics_can_be_turned_off(server_factory: ServerFactory) -> None:
    server = server_factory("--no-metrics")
    assert httpx.get(f"{server.origin}/metrics").status_code == 404
