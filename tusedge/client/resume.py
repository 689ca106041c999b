"""The client's resume store: a small SQLite file mapping (fingerprint, endpoint) to an unfinished
upload — its part URLs (one, or the partial uploads' in order for a parallel upload) and, once created,
the final upload's URL."""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import sqlite3
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path

from tusedge.client.errors import UploadInProgress


def default_store_path() -> Path:
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "tusedge" / "uploads.db"


@dataclass(frozen=True)
class StoredUpload:
    parts: list[str]
    final: str | None = None


class ResumeStore:
    def __init__(self, path: str | Path | None = None) -> None:
        self.path = Path(path) if path is not None else default_store_path()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with closing(self._connect()) as db, db:
            db.execute(
                "CREATE TABLE IF NOT EXISTS uploads (fingerprint TEXT, endpoint TEXT, urls TEXT NOT NULL,"
                " PRIMARY KEY (fingerprint, endpoint))"
            )

    def _connect(self) -> sqlite3.Connection:
        return sqlite3.connect(self.path, timeout=30)

    def get(self, fingerprint: str, endpoint: str) -> StoredUpload | None:
        with closing(self._connect()) as db:
            row = db.execute(
                "SELECT urls FROM uploads WHERE fingerprint = ? AND endpoint = ?", (fingerprint, endpoint)
            ).fetchone()
        if row is None:
            return None
        record = json.loads(row[0])
        return StoredUpload(parts=list(record["parts"]), final=record.get("final"))

    def put(self, fingerprint: str, endpoint: str, upload: StoredUpload) -> None:
        with closing(self._connect()) as db, db:
            db.execute(
                "INSERT OR REPLACE INTO uploads (fingerprint, endpoint, urls) VALUES (?, ?, ?)",
                (fingerprint, endpoint, json.dumps({"parts": upload.parts, "final": upload.final})),
            )

    @contextmanager
    def claim(self, fingerprint: str, endpoint: str) -> Iterator[None]:
        """Hold this upload for this process: a second run of the same upload (same file, same endpoint)
        while this one is going fails at once with UploadInProgress instead of fighting over the parts.
        An flock, so a killed process releases it."""
        name = hashlib.sha256(f"{fingerprint}\0{endpoint}".encode()).hexdigest()[:32]
        locks = self.path.parent / "locks"
        locks.mkdir(exist_ok=True)
        fd = os.open(locks / f"{name}.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise UploadInProgress(f"another process is uploading this file to {endpoint}") from None
            yield
        finally:
            os.close(fd)

    def remove(self, fingerprint: str, endpoint: str) -> None:
        with closing(self._connect()) as db, db:
            db.execute("DELETE FROM uploads WHERE fingerprint = ? AND endpoint = ?", (fingerprint, endpoint))
