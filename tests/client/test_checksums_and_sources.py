"""Checksum algorithm choice and digests, and the sources an upload reads from."""

from __future__ import annotations

import base64
import hashlib
import io
from pathlib import Path

import pytest

from tusedge.client import checksums
from tusedge.client.errors import ClientError, SourceChanged
from tusedge.client.source import FileSource, StreamSource, open_source


def test_auto_picks_sha256_first_then_what_the_server_offers() -> None:
    assert checksums.choose("sha1,md5,sha256", "auto") == "sha256"
    assert checksums.choose("md5, SHA1", "auto") == "sha1"
    assert checksums.choose(None, "auto") is None
    assert checksums.choose("sha1", "none") is None


def test_auto_takes_crc32_per_patch_when_the_whole_files_digest_is_verified() -> None:
    """With the whole file's SHA-256 checked by the server, a PATCH only needs to catch damage in transit."""
    offer = "sha1,md5,sha256,sha512,crc32"
    assert checksums.choose(offer, "auto", whole_file_verified=True) == "crc32"
    assert checksums.choose(offer, "auto", whole_file_verified=False) == "sha256"
    assert checksums.choose("sha1,sha256", "auto", whole_file_verified=True) == "sha256"  # no crc32 offered
    assert checksums.choose(offer, "sha256", whole_file_verified=True) == "sha256"  # asked for by name


def test_an_algorithm_asked_for_must_be_offered() -> None:
    assert checksums.choose("sha1,crc32", "crc32") == "crc32"
    with pytest.raises(ClientError, match="does not offer checksum algorithm 'sha512'"):
        checksums.choose("sha1", "sha512")


def test_digest_of_a_range_and_the_header_format() -> None:
    data = bytes(range(256)) * 100_000
    source = StreamSource(io.BytesIO(data))
    value = checksums.digest(source, "sha256", 1000, 20_000_000)
    assert value == hashlib.sha256(data[1000:20_001_000]).digest()
    assert checksums.header_value("sha256", value) == "sha256 " + base64.b64encode(value).decode()


def test_file_source_reads_ranges_and_reports_a_shrunk_file(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"0123456789")
    source = open_source(path)
    assert isinstance(source, FileSource) and source.size == 10 and source.name == "f"
    assert source.read(3, 4) == b"3456"
    path.write_bytes(b"01")
    with pytest.raises(SourceChanged, match="shorter"):
        source.read(3, 4)
    source.close()


def test_stream_source_has_no_fingerprint_unless_given_a_key() -> None:
    assert StreamSource(io.BytesIO(b"abc")).fingerprint() is None
    assert StreamSource(io.BytesIO(b"abc"), key="k1").fingerprint() == "k1"
    with pytest.raises(SourceChanged):
        StreamSource(io.BytesIO(b"abc")).read(2, 5)
