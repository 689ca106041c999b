"""Uppy (the npm "uppy" bundle: core + its Tus plugin) in Debian's Chromium, on a page of another origin,
uploading to tusedge: the bytes and the metadata arrive intact."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote

from js_harness import MiB, download_sha256, make_random_file, tus_head
from server_process import ServerProcess

from browser.browser_harness import HERE, UPPY_DIST, Browser, StaticSite
from tusedge.protocol.metadata import parse_metadata

RESULT = "() => document.body.dataset.result ? { ...document.body.dataset } : null"


def test_uppy_uploads_to_tusedge_from_another_origin(
    browser: Browser, tusedge_server: ServerProcess, static_site: Callable[[Path], StaticSite], tmp_path: Path
) -> None:
    site_dir = tmp_path / "site"
    site_dir.mkdir()
    shutil.copy(HERE / "uppy" / "index.html", site_dir)
    shutil.copy(UPPY_DIST / "uppy.min.js", site_dir)
    site = static_site(site_dir)
    source = tmp_path / "holiday video.mp4"
    size = 7 * MiB + 3
    digest = make_random_file(source, size)
    assert browser.goto(f"{site.origin}/index.html?endpoint={quote(tusedge_server.url, safe='')}") == 200
    browser.wait_for("() => !document.getElementById('file').disabled", timeout=20)
    browser.set_input_files("#file", [source])
    done = browser.wait_for(RESULT, timeout=120)
    assert done["result"] == "success", f"{done}\n{browser.describe()}"
    url = done["url"]
    assert url.startswith(tusedge_server.url)
    assert download_sha256(url) == (size, digest)
    metadata = parse_metadata(tus_head(url).headers["Upload-Metadata"])
    assert metadata["name"] == b"holiday video.mp4" and metadata["owner"] == b"uppy-test"
