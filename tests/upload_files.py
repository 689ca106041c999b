"""Files for upload tests: random content with its SHA-256, and the SHA-256 of what a server serves."""

from __future__ import annotations

import hashlib
import os
import ssl
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Generic, TypeVar

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


T = TypeVar("T")


class InBackground(Generic[T]):
    """Runs ``work`` in a thread (an upload the test disturbs meanwhile); ``result()`` joins it and
    returns its value, failing the test with the exception it raised."""

    def __init__(self, work: Callable[[], T]) -> None:
        self._outcome: dict[str, object] = {}

        def run() -> None:
            try:
                self._outcome["value"] = work()
            except Exception as exc:  # reported by result()
                self._outcome["error"] = exc

        self._thread = threading.Thread(target=run)
        self._thread.start()

    def is_alive(self) -> bool:
        return self._thread.is_alive()

    def result(self, timeout: float = 120) -> T:
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "still running"
        assert "error" not in self._outcome, self._outcome["error"]
        return self._outcome["value"]  # type: ignore[return-value]
