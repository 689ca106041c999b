"""Fingerprints tell files apart; the resume store keeps upload URLs per file and endpoint (real SQLite)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tusedge.client.fingerprint import EDGE_BYTES, fingerprint
from tusedge.client.resume import ResumeStore, StoredUpload, default_store_path


def write(path: Path, data: bytes) -> None:
    path.write_bytes(data)


def test_same_file_same_fingerprint(tmp_path: Path) -> None:
    path = tmp_path / "a.bin"
    write(path, os.urandom(3 * EDGE_BYTES))
    assert fingerprint(path) == fingerprint(str(path))


@pytest.mark.parametrize("where", ["head", "tail"])
def test_changed_head_or_tail_changes_fingerprint_even_with_same_size_and_mtime(tmp_path: Path, where: str) -> None:
    """A modified file is never resumed onto an old upload, even if size and mtime were restored."""
    path = tmp_path / "a.bin"
    data = bytearray(os.urandom(3 * EDGE_BYTES))
    write(path, bytes(data))
    stat = path.stat()
    before = fingerprint(path)
    data[0 if where == "head" else -1] ^= 0xFF
    write(path, bytes(data))
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert fingerprint(path) != before


def test_changed_mtime_or_size_or_path_changes_fingerprint(tmp_path: Path) -> None:
    path = tmp_path / "a.bin"
    write(path, b"x" * 100)
    before = fingerprint(path)
    os.utime(path, ns=(0, path.stat().st_mtime_ns + 1_000_000))
    assert fingerprint(path) != before
    other = tmp_path / "b.bin"
    write(other, path.read_bytes())
    os.utime(other, ns=(0, path.stat().st_mtime_ns))
    assert fingerprint(other) != fingerprint(path)


def test_resume_store_round_trip_per_fingerprint_and_endpoint(tmp_path: Path) -> None:
    store = ResumeStore(tmp_path / "deep" / "uploads.db")
    assert store.get("f1", "http://a/files/") is None
    two = StoredUpload(["http://a/files/1", "http://a/files/2"])
    store.put("f1", "http://a/files/", two)
    store.put("f1", "http://b/files/", StoredUpload(["http://b/files/9"]))
    assert store.get("f1", "http://a/files/") == two
    assert ResumeStore(tmp_path / "deep" / "uploads.db").get("f1", "http://b/files/") == StoredUpload(
        ["http://b/files/9"]
    )
    joined = StoredUpload(["http://a/files/1", "http://a/files/2"], final="http://a/files/3")
    store.put("f1", "http://a/files/", joined)
    assert store.get("f1", "http://a/files/") == joined
    store.remove("f1", "http://a/files/")
    assert store.get("f1", "http://a/files/") is None


def test_default_store_lives_in_the_users_cache(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert default_store_path() == tmp_path / "tusedge" / "uploads.db"
