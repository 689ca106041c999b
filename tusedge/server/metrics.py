"""Prometheus metrics, defined in this one place and served at ``/metrics`` (prometheus_client's text
format). With ``--workers N`` every worker writes its values to files in a node-local temporary folder
(the library's multiprocess mode, switched on by ``serve`` before the workers start, removed when it
ends) and any worker's ``/metrics`` answers for all of them. Node-local, not in the data folder: nodes
sharing that folder must not count each other's processes.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client import multiprocess as prometheus_multiprocess
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tusedge.server.middleware import HttpMiddleware

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PATCH", "DELETE", "OPTIONS"})
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800, 3600)


def prepare_multiprocess() -> Path:
    """Before workers start: a new folder for their metric files (``tusedge-metrics-<pid>-...`` in the
    system's temporary folder), named in the environment they inherit. The caller removes it."""
    directory = Path(tempfile.mkdtemp(prefix=f"tusedge-metrics-{os.getpid()}-"))
    os.environ[MULTIPROC_ENV] = str(directory)
    return directory


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("tusedge_requests", "HTTP requests answered, by method and status",
                                ["method", "status"], registry=r)  # fmt: skip
        self.request_seconds = Histogram("tusedge_request_duration_seconds", "time to answer, by method",
                                         ["method"], buckets=DURATION_BUCKETS, registry=r)  # fmt: skip
        self.uploads_created = Counter("tusedge_uploads_created", "uploads created, by kind (single, partial, final)",
                                       ["kind"], registry=r)  # fmt: skip
        self.uploads_completed = Counter("tusedge_uploads_completed", "uploads complete (merged, verified)",
                                         registry=r)  # fmt: skip
        self.uploads_failed = Counter("tusedge_uploads_failed", "uploads failed (digest mismatch, part gone)",
                                      registry=r)  # fmt: skip
        self.uploads_removed = Counter("tusedge_uploads_removed", "uploads removed, by reason (terminated, expired)",
                                       ["reason"], registry=r)  # fmt: skip
        self.bytes_received = Counter("tusedge_bytes_received", "upload bytes made durable and counted in offsets",
                                      registry=r)  # fmt: skip
        self.body_bytes_read = Counter("tusedge_body_bytes_read", "upload body bytes read from clients (before"
                                       " they are written; what a crash can lose is this minus bytes_received)",
                                       registry=r)  # fmt: skip
        self.checkpoints = Counter("tusedge_checkpoints", "mid-body commits of a long request body (each one"
                                   " fdatasync of the upload's file and one state commit)", registry=r)  # fmt: skip
        self.patches_in_progress = Gauge("tusedge_patches_in_progress", "request bodies being written now",
                                         registry=r, multiprocess_mode="livesum")  # fmt: skip
        self.merge_seconds = Histogram("tusedge_merge_duration_seconds", "time to join a final upload's parts",
                                       buckets=DURATION_BUCKETS, registry=r)  # fmt: skip
        self.merged_bytes = Counter("tusedge_merged_bytes", "bytes joined into final uploads, by how: shared"
                                    " (reflinked blocks, no data written) or copied", ["how"], registry=r)  # fmt: skip
        self.parts_joined_early = Counter("tusedge_parts_joined_early", "partial uploads joined into their final"
                                          " upload as they completed, before its last part", registry=r)  # fmt: skip

    @contextmanager
    def writing(self) -> Iterator[None]:
        self.patches_in_progress.inc()
        try:
            yield
        finally:
            self.patches_in_progress.dec()

    def exposition(self) -> bytes:
        if MULTIPROC_ENV in os.environ:
            registry = CollectorRegistry()
            prometheus_multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
            return generate_latest(registry)
        return generate_latest(self.registry)

    async def endpoint(self, request: Request) -> Response:
        return Response(self.exposition(), media_type=CONTENT_TYPE_LATEST)


class RequestMetrics(HttpMiddleware):
    """Pure ASGI middleware: counts every HTTP answer by method and status, and times it."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        super().__init__(app)
        self.metrics = metrics

    async def http(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.monotonic()
        status = 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            method = str(scope.get("method", ""))
            method = method if method in KNOWN_METHODS else "OTHER"  # clients must not mint label values
            self.metrics.requests.labels(method, str(status)).inc()
            self.metrics.request_seconds.labels(method).observe(time.monotonic() - started)
