"""What an upload is asked to do (:class:`UploadOptions`), what it did (:class:`UploadResult`), and where
its parts go (:func:`node_endpoint`). The uploader (uploader.py) takes the first and returns the second."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from tusedge.client import compression
from tusedge.client.retry import RetryPolicy
from tusedge.client.transport import HttpVersion

DEFAULT_CHUNK_BYTES = 64 * 1024 * 1024
# Files up to this size go in the creation request itself (creation-with-upload): one round trip instead
# of two, which is what counts for small files.
WITH_CREATION_BYTES = 1024 * 1024


@dataclass(frozen=True)
class UploadOptions:
    parallel: int = 1
    """Partial uploads at once; used only when the server offers concatenation."""
    chunk_size: int = DEFAULT_CHUNK_BYTES
    """Bytes per PATCH request."""
    metadata: Mapping[str, str] = field(default_factory=dict)
    headers: Mapping[str, str] = field(default_factory=dict)
    """Sent with every request (e.g. Authorization)."""
    resume: bool = True
    """Look the file up in the resume store and record its upload there."""
    store_path: Path | None = None
    """The resume store; default ``$XDG_CACHE_HOME/tusedge/uploads.db``."""
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    rate_limit: int | None = None
    """Bytes per second for the whole upload (all parts together); None: as fast as it goes."""
    checksum: str = "auto"
    """Per-PATCH Upload-Checksum: "auto" (the best algorithm the server offers), "none", or a name."""
    digest: bool = True
    """Declare the whole file's digest at creation when the server verifies it, and wait for its verdict."""
    http: HttpVersion = "1.1"
    connections: int = 0
    """HTTP/2 and HTTP/3: connections the parts are spread over; 0: one per part. Those protocols carry
    every request of a client on one connection, and a path that caps or window-limits each connection
    caps all parts together there; separate connections give each part its own (docs/performance.md).
    1 keeps them on one connection. HTTP/1.1 always has a connection per part."""
    verify: bool | str = True
    """TLS: True checks against the system CAs, a path against that PEM file, False not at all."""
    timeout_s: float = 60.0
    verify_wait_s: float = 600.0
    """How long to wait for the server's verdict on the whole-file digest."""
    compress: compression.Mode = "none"
    """zstd PATCH bodies where the server takes them: "zstd", "auto" (when a sample shrinks >= 10 %), "none"."""

    def __post_init__(self) -> None:
        if self.parallel < 1 or self.chunk_size < 1 or (self.rate_limit is not None and self.rate_limit < 1):
            raise ValueError("parallel, chunk_size and rate_limit must be positive")
        if self.connections < 0:
            raise ValueError("connections must not be negative")


@dataclass
class UploadResult:
    url: str
    size: int
    parts: int
    """Partial uploads used (1: a plain sequential upload)."""
    resumed_from: int
    """Bytes the server already had when this run started."""
    bytes_sent: int
    """Body bytes this run sent, including those of PATCHes that failed and were sent again."""
    retries: int
    checksum: str | None
    """The per-PATCH checksum algorithm, if any."""
    digest_status: str | None
    """The server's verdict on the whole-file digest: "verified", "pending" (still computing when we
    stopped waiting), or None when no digest was declared or the server does not verify."""
    http_version: str
    """The HTTP version the server answered with ("HTTP/1.1", "HTTP/2", "HTTP/3")."""
    compression: str | None = None
    """The Content-Encoding of this run's PATCH bodies ("zstd"), or None."""
    wire_bytes: int = 0
    """PATCH body bytes on the wire: compressed where ``compression`` is set, else ``bytes_sent``."""


def node_endpoint(endpoint: str, upload_url: str) -> str:
    """The creation URL of the node that answered with ``upload_url``: ``endpoint`` itself when the upload is
    on its origin, else the upload URL's folder on the upload's origin (with the endpoint's query: a signed
    URL's signature). A server with a node-sticky --public-url behind Anycast or regional DNS names itself in
    Location; the other parts of a parallel upload, and its final, must be created on that same node."""
    base, upload = httpx.URL(endpoint), httpx.URL(upload_url)
    if (base.scheme, base.host, base.port) == (upload.scheme, upload.host, upload.port):
        return endpoint
    folder = upload.path.rsplit("/", 1)[0] + "/"
    return str(upload.copy_with(path=folder, query=base.query or None, fragment=None))
