"""Files for upload tests: random content with its SHA-256, and the SHA-256 of what a server serves."""

from __future__ import annotations

import hashlib
import os
import ssl
from pathlib import Path

import httpx


def random_file(path: Path, size: int) -> str:
    """Write ``size`` random bytes to ``path``; return their SHA-256 (hex)."""
    data = os.urandom(size)
    path.write_bytes(data)
    return hashlib.sha256(data).hexdigest()


def served_sha256(url: str, cafile: Path | None = None) -> str:
    """GET ``url`` (checking TLS against ``cafile`` when given); the SHA-256 (hex) of the body."""
    response = httpx.get(url, timeout=120, verify=ssl.create_default_context(cafile=cafile) if cafile else True)
    assert response.status_code == 200, response.text
    return hashlib.sha256(response.content).hexdigest()
