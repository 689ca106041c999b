"""zstd request bodies against a real server: ``Content-Encoding: zstd`` PATCH (and creation-with-upload)
bodies are decoded while they stream; offsets, Upload-Length and Upload-Checksum count decoded bytes; a
body cut off keeps every byte decoded; a zstd bomb is stopped at Upload-Length with 413 in bounded memory;
a frame asking for a huge window, a broken body and other encodings are refused and change nothing. And
``tusedge upload --compress``."""

from __future__ import annotations

import base64
import hashlib
import sys
from pathlib import Path

import httpx
import pytest
from rawhttp import OCTETS, TUS, RawRequest, create_upload, head_offset, poll_offset
from server_process import ServerFactory, ServerProcess
from upload_files import random_file, served_sha256

from tusedge.client import UploadOptions, upload_sync
from tusedge.client.resume import ResumeStore

if sys.version_info >= (3, 14):
    from compression import zstd
else:
    from backports import zstd

MIB = 1024 * 1024
ZSTD = {**OCTETS, "Content-Encoding": "zstd"}


def text_log(size: int) -> bytes:
    """A compressible file: log lines with varying numbers (about 5:1 with zstd -1 or -3)."""
    lines, n = [], 0
    total = 0
    while total < size:
        line = f"2026-12-01T10:{n % 60:02d}:{n * 7 % 60:02d}Z INFO upload {n:08x} offset={n * 4096} ok\n".encode()
        lines.append(line)
        total += len(line)
        n += 1
    return b"".join(lines)[:size]


def vm_hwm(server: ServerProcess) -> int:
    """The server process's peak resident memory in bytes (VmHWM)."""
    for line in Path(f"/proc/{server.pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM")


def sha1_header(data: bytes) -> str:
    return "sha1 " + base64.b64encode(hashlib.sha1(data).digest()).decode()


def test_options_names_zstd_in_accept_encoding_exposed_to_pages(tusedge_server: ServerProcess) -> None:
    options = httpx.options(tusedge_server.url, headers={**TUS, "Origin": "https://page.example"})
    assert options.headers["Accept-Encoding"] == "zstd"
    assert "accept-encoding" in options.headers["Access-Control-Expose-Headers"].lower()


def test_a_zstd_patch_is_decoded_and_the_offset_counts_decoded_bytes(tusedge_server: ServerProcess) -> None:
    data = text_log(3 * MIB + 17)
    url = create_upload(tusedge_server.url, len(data))
    first = zstd.compress(data[: 2 * MIB]) + zstd.compress(data[2 * MIB : 2 * MIB + 5])  # two frames
    answered = httpx.patch(url, content=first, headers={**ZSTD, "Upload-Offset": "0"})
    assert answered.status_code == 204, answered.text
    assert answered.headers["Upload-Offset"] == str(2 * MIB + 5)
    rest = data[2 * MIB + 5 :]
    checksum = sha1_header(rest)  # Upload-Checksum is over the decoded bytes
    headers = {**ZSTD, "Upload-Offset": str(2 * MIB + 5), "Upload-Checksum": checksum}
    assert httpx.patch(url, content=zstd.compress(rest), headers=headers).status_code == 204
    assert served_sha256(url) == hashlib.sha256(data).hexdigest()


def test_upload_checksum_over_the_encoded_bytes_is_a_mismatch_and_changes_nothing(
    tusedge_server: ServerProcess,
) -> None:
    data = text_log(MIB)
    body = zstd.compress(data)
    url = create_upload(tusedge_server.url, len(data))
    headers = {**ZSTD, "Upload-Offset": "0", "Upload-Checksum": sha1_header(body)}
    assert httpx.patch(url, content=body, headers=headers).status_code == 460
    assert head_offset(url) == 0


def test_creation_with_upload_takes_a_zstd_body(tusedge_server: ServerProcess) -> None:
    data = text_log(MIB)
    made = httpx.post(tusedge_server.url, content=zstd.compress(data),
                      headers={**ZSTD, "Upload-Length": str(len(data))})  # fmt: skip
    assert made.status_code == 201, made.text
    assert made.headers["Upload-Offset"] == str(len(data))
    assert served_sha256(made.headers["Location"]) == hashlib.sha256(data).hexdigest()


def test_a_zstd_bomb_is_cut_off_at_upload_length_with_413_in_bounded_memory(tusedge_server: ServerProcess) -> None:
    """8 GiB of zeros in a few hundred KiB of zstd against an upload of 64 MiB: 413 once the decoded bytes
    pass the length, nothing kept, and the server's memory never holds more than a few steps of output."""
    frame = zstd.compress(bytes(64 * MIB), level=1)  # 64 MiB of zeros in a few KiB; the body is 128 of them
    bomb = frame * 128
    assert len(bomb) < 2 * MIB
    url = create_upload(tusedge_server.url, 64 * MIB)
    before = vm_hwm(tusedge_server)
    answered = httpx.patch(url, content=bomb, headers={**ZSTD, "Upload-Offset": "0"}, timeout=120)
    assert answered.status_code == 413, answered.text
    assert head_offset(url) == 0
    assert vm_hwm(tusedge_server) - before < 64 * MIB, "decoding held the body in memory"


def test_a_frame_that_asks_for_a_huge_window_is_refused(tusedge_server: ServerProcess) -> None:
    compressor = zstd.ZstdCompressor(options={zstd.CompressionParameter.window_log: 30})
    body = compressor.compress(b"x" * 1000) + compressor.flush()  # streamed: the header declares 1 GiB
    url = create_upload(tusedge_server.url, 1000)
    answered = httpx.patch(url, content=body, headers={**ZSTD, "Upload-Offset": "0"})
    assert answered.status_code == 400 and "window" in answered.text, answered.text
    assert head_offset(url) == 0


@pytest.mark.parametrize(
    "body", [b"this is not zstd", zstd.compress(b"y" * 100_000)[:-9]], ids=["garbage", "ends inside a frame"]
)
def test_a_body_that_is_not_whole_zstd_is_refused_and_changes_nothing(
    tusedge_server: ServerProcess, body: bytes
) -> None:
    url = create_upload(tusedge_server.url, 100_000)
    answered = httpx.patch(url, content=body, headers={**ZSTD, "Upload-Offset": "0"})
    assert answered.status_code == 400 and answered.text.strip(), answered.text
    assert head_offset(url) == 0


@pytest.mark.parametrize("encoding", ["gzip", "br", "zstd, gzip"])
def test_other_content_encodings_are_415_naming_zstd(tusedge_server: ServerProcess, encoding: str) -> None:
    url = create_upload(tusedge_server.url, 10)
    answered = httpx.patch(
        url, content=b"x" * 10, headers={**OCTETS, "Upload-Offset": "0", "Content-Encoding": encoding}
    )
    assert answered.status_code == 415 and answered.headers["Accept-Encoding"] == "zstd"
    assert head_offset(url) == 0


def test_a_zstd_body_cut_off_keeps_every_byte_that_was_fully_decoded(tusedge_server: ServerProcess) -> None:
    data = text_log(8 * MIB)
    body = zstd.compress(data)
    sent = body[: len(body) // 2]
    decodable = len(zstd.ZstdDecompressor().decompress(sent))  # what a decoder can make of the half
    assert 0 < decodable < len(data)
    url = create_upload(tusedge_server.url, len(data))
    headers = {**ZSTD, "Upload-Offset": "0", "Content-Length": str(len(body))}
    with RawRequest("PATCH", url, headers) as request:
        request.send(sent)
    assert poll_offset(url, at_least=decodable) == decodable
    rest = data[decodable:]
    patched = httpx.patch(url, content=zstd.compress(rest), headers={**ZSTD, "Upload-Offset": str(decodable)})
    assert patched.status_code == 204
    assert served_sha256(url) == hashlib.sha256(data).hexdigest()


def test_client_compress_auto_compresses_a_log_and_not_random_bytes(
    server_factory: ServerFactory, tmp_path: Path
) -> None:
    server = server_factory()
    log, noise = tmp_path / "app.log", tmp_path / "noise.bin"
    log.write_bytes(text_log(20 * MIB + 3))
    random_file(noise, 6 * MIB)
    options = UploadOptions(parallel=2, chunk_size=4 * MIB, compress="auto")
    store = ResumeStore(tmp_path / "s.db")
    done = upload_sync(log, server.url, options, store=store)
    assert done.compression == "zstd" and done.wire_bytes < done.size / 3, done
    assert served_sha256(done.url) == hashlib.sha256(log.read_bytes()).hexdigest()
    plain = upload_sync(noise, server.url, options, store=store)
    assert plain.compression is None and plain.wire_bytes == plain.bytes_sent == plain.size
    assert served_sha256(plain.url) == hashlib.sha256(noise.read_bytes()).hexdigest()
