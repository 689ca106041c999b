"""The client's resume store: a small SQLite file mapping (fingerprint, endpoint) to the upload URLs of an
unfinished upload — one URL, or the partial uploads' URLs in order for a parallel one."""

from __future__ import annotations

import json
import os
import sqlite3
from contextlib import closing
from pathlib import Path


def default_store_path() -> Path:
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "tusedge" / "uploads.db"


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

    def get(self, fingerprint: str, endpoint: str) -> list[str] | None:
        with closing(self._connect()) as db:
            row = db.execute(
                "SELECT urls FROM uploads WHERE fingerprint = ? AND endpoint = ?", (fingerprint, endpoint)
            ).fetchone()
        return None if row is None else list(json.loads(row[0]))

    def put(self, fingerprint: str, endpoint: str, urls: list[str]) -> None:
        with closing(self._connect()) as db, db:
            db.execute(
                "INSERT OR REPLACE INTO uploads (fingerprint, endpoint, urls) VALUES (?, ?, ?)",
                (fingerprint, endpoint, json.dumps(urls)),
            )

    def remove(self, fingerprint: str, endpoint: str) -> None:
        with closing(self._connect()) as db, db:
            db.execute("DELETE FROM uploads WHERE fingerprint = ? AND endpoint = ?", (fingerprint, endpoint))
