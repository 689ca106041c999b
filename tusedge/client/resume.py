"""The client's resume store: a small SQLite file mapping (fingerprint, endpoint) to an unfinished
upload — its part URLs (one, or the partial uploads' in order for a parallel upload) and, once created,
the final upload's URL."""

from __future__ import annotations

import json
import os
import sqlite3
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path


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

    def remove(self, fingerprint: str, endpoint: str) -> None:
        with closing(self._connect()) as db, db:
            db.execute("DELETE FROM uploads WHERE fingerprint = ? AND endpoint = ?", (fingerprint, endpoint))
