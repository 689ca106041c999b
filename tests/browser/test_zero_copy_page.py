"""The upload page in Chromium cuts its parallel parts on the server's announced unit
(tus-js-client's ``parallelUploadBoundaries``), so a server whose data folder is on XFS or btrfs joins them
by sharing blocks: with ``--keep-partials`` the parts and the final take the space of one copy."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from js_harness import MiB, download_sha256, make_random_file
from loopfs import loop_filesystem, used_bytes
from server_process import ServerFactory

from browser.browser_harness import Browser
from browser.page import wait_done, wait_ready

TUS = {"Tus-Resumable": "1.0.0"}
MERGED = re.compile(r"merged 4 parts, (\d+) bytes in [\d.]+ s \((\d+) shared, (\d+) copied\)")


@pytest.fixture(params=["xfs", "btrfs"])
def reflink_fs(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Path]:
    with loop_filesystem(request.param, tmp_path, size=2 << 30) as mount:
        yield mount


def test_page_cuts_parts_on_the_servers_unit_and_the_merge_shares_their_blocks(
    browser: Browser, server_factory: ServerFactory, reflink_fs: Path, tmp_path: Path
) -> None:
    size = 256 * MiB + 12_345
    source = tmp_path / "odd.bin"
    digest = make_random_file(source, size)
    server = server_factory("--keep-partials", "--part-alignment-bytes", "4MiB", data_dir=reflink_fs / "data")
    before = used_bytes(reflink_fs)
    assert browser.goto(server.origin + "/") == 200
    wait_ready(browser)
    browser.set_input_files("#file-input", [source])
    done = wait_done(browser, source.name, timeout=240)
    assert done["parallel"] == "4", done
    assert download_sha256(done["url"]) == (size, digest)

    parts = httpx.head(done["url"], headers=TUS).headers["Upload-Concat"].removeprefix("final;").split()
    lengths = [int(httpx.head(part, headers=TUS).headers["Upload-Length"]) for part in parts]
    assert len(lengths) == 4 and all(n % (4 * MiB) == 0 for n in lengths[:-1]) and sum(lengths) == size
    merged = [m.groups() for m in map(MERGED.search, server.log) if m]
    assert merged == [(str(size), str(size), "0")], "".join(server.log)
    grew = used_bytes(reflink_fs) - before
    assert size <= grew < size * 1.25, f"{grew / MiB:.0f} MiB used for a {size / MiB:.0f} MiB file"
