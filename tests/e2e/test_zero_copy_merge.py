"""Aligned parts and zero-copy merges end to end: a real server whose data folder is a loop-mounted XFS or
btrfs image, ``tusedge upload --parallel 4`` of an odd-sized file. The server announces its unit, the
client cuts the parts on it, and the merge shares the parts' blocks instead of copying them: with
``--keep-partials`` the parts and the final together take the space of one copy."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from loopfs import loop_filesystem, used_bytes
from metrics_samples import samples
from server_process import ROOT, ServerFactory, ServerProcess
from upload_files import random_file, served_sha256

from tusedge.client import UploadOptions, upload_sync
from tusedge.client.fingerprint import fingerprint
from tusedge.client.resume import ResumeStore, StoredUpload

MIB = 1024 * 1024
TUS = {"Tus-Resumable": "1.0.0"}
OCTETS = "application/offset+octet-stream"
MERGED = re.compile(
    r"merged (\d+) parts, (\d+) bytes in ([\d.]+) s \((\d+) shared, (\d+) copied\), (\d+) joined earlier"
)


@pytest.fixture(params=["xfs", "btrfs"])
def reflink_fs(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Path]:
    with loop_filesystem(request.param, tmp_path, size=2 << 30) as mount:
        yield mount


def merged_line(server: ServerProcess) -> re.Match[str]:
    found = [m for m in map(MERGED.search, server.log) if m]
    assert len(found) == 1, "".join(server.log)
    return found[0]


def test_server_announces_its_part_alignment_in_options(server_factory: ServerFactory) -> None:
    assert httpx.options(server_factory().url, headers=TUS).headers["Tusedge-Part-Alignment"] == str(MIB)
    custom = server_factory("--part-alignment-bytes", "4MiB")
    options = httpx.options(custom.url, headers={**TUS, "Origin": "https://page.example"})
    assert options.headers["Tusedge-Part-Alignment"] == str(4 * MIB)
    # exposed to pages on other origins (the upload page reads it through CORS)
    assert "tusedge-part-alignment" in options.headers["Access-Control-Expose-Headers"].lower()
    assert "Tusedge-Part-Alignment" not in httpx.options(server_factory("--part-alignment-bytes", "0").url).headers


def test_four_aligned_parts_of_an_odd_sized_file_are_merged_by_sharing_their_blocks(
    server_factory: ServerFactory, reflink_fs: Path, tmp_path: Path
) -> None:
    size = 256 * MIB + 12_345
    source = tmp_path / "odd.bin"  # outside the file system under test
    digest = random_file(source, size)
    server = server_factory("--keep-partials", "--part-alignment-bytes", "4MiB", data_dir=reflink_fs / "data")
    before = used_bytes(reflink_fs)
    done = subprocess.run(
        [sys.executable, "-m", "tusedge", "upload", str(source), server.url, "--parallel", "4", "--no-resume"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    url = done.stdout.strip()
    assert served_sha256(url) == digest

    parts = httpx.head(url, headers=TUS).headers["Upload-Concat"].removeprefix("final;").split()
    lengths = [int(httpx.head(part, headers=TUS).headers["Upload-Length"]) for part in parts]
    assert len(lengths) == 4 and all(n % (4 * MIB) == 0 for n in lengths[:-1]) and sum(lengths) == size

    found = merged_line(server)
    # Parts that completed before the others were joined early (the client declares the final early): the
    # merge itself shares the rest.
    assert (int(found[1]), int(found[2]), int(found[4]) + int(found[6]), int(found[5])) == (4, size, size, 0), found[0]
    merged = samples(server.origin)
    assert merged[("tusedge_merged_bytes_total", (("how", "shared"),))] == size
    assert merged[("tusedge_merged_bytes_total", (("how", "copied"),))] == 0
    # The parts are kept and the final shares their blocks: one copy's worth of space, not two.
    grew = used_bytes(reflink_fs) - before
    assert size <= grew < size * 1.25, f"{grew / MIB:.0f} MiB used for a {size / MIB:.0f} MiB file"


def test_a_resumed_upload_keeps_the_cut_its_parts_were_made_with(server_factory: ServerFactory, tmp_path: Path) -> None:
    """Parts an earlier run (or another split, e.g. ``size // 3``) created and half sent are continued with
    their own lengths, not cut again on today's unit: no part is created anew and every byte lands at its
    place."""
    server = server_factory("--part-alignment-bytes", "4MiB")
    size = 12 * MIB + 5
    source = tmp_path / "resumed.bin"
    digest = random_file(source, size)
    data = source.read_bytes()
    third = size // 3
    cut = [(0, third), (third, third), (2 * third, size - 2 * third)]  # unaligned, as an older client made it
    urls = []
    with httpx.Client(headers=TUS) as client:
        for start, length in cut:
            made = client.post(server.url, headers={"Upload-Length": str(length), "Upload-Concat": "partial"})
            url = made.headers["Location"]
            half = data[start : start + length // 2]
            sent = client.patch(url, content=half, headers={"Upload-Offset": "0", "Content-Type": OCTETS})
            assert sent.status_code == 204
            urls.append(url)
    store = ResumeStore(tmp_path / "store.db")
    store.put(fingerprint(source), server.url, StoredUpload(urls))
    result = upload_sync(source, server.url, UploadOptions(parallel=3, chunk_size=MIB), store=store)
    assert result.parts == 3 and result.resumed_from == sum(length // 2 for _, length in cut)
    assert samples(server.origin)[("tusedge_uploads_created_total", (("kind", "partial"),))] == 3
    assert httpx.head(result.url, headers=TUS).headers["Upload-Concat"] == "final;" + " ".join(urls)
    assert served_sha256(result.url) == digest
