"""A page on another origin (examples/browser, served by a second web server on another 127.0.0.1 port)
uploads to tusedge when ``--cors-origins`` lists its origin, and is refused when it does not."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote

import httpx
from js_harness import MiB, download_sha256, make_random_file
from server_process import ServerFactory

from browser.browser_harness import EXAMPLE_DIR, Browser, StaticSite

RESULT = "() => document.body.dataset.result ? { ...document.body.dataset } : null"
LOADED = "() => !document.getElementById('file').disabled"


def open_example(browser: Browser, site: StaticSite, endpoint: str) -> None:
    assert browser.goto(f"{site.origin}/index.html?endpoint={quote(endpoint, safe='')}") == 200
    browser.wait_for(LOADED, timeout=20)  # tus-js-client came from the tusedge server


def test_example_page_on_an_allowed_origin_uploads_and_another_origin_is_refused(
    browser: Browser, server_factory: ServerFactory, static_site: Callable[[Path], StaticSite], tmp_path: Path
) -> None:
    allowed = static_site(EXAMPLE_DIR)
    other = static_site(EXAMPLE_DIR)
    server = server_factory("--cors-origins", allowed.origin)
    source = tmp_path / "report.pdf"
    size = 3 * MiB + 5
    digest = make_random_file(source, size)

    # The other origin: the browser's preflight for the POST is refused, so the upload fails in the page
    # (after tus-js-client's default retries) and the server creates nothing.
    preflight = httpx.options(
        server.url,
        headers={"Origin": other.origin, "Access-Control-Request-Method": "POST",
                 "Access-Control-Request-Headers": "tus-resumable,upload-length,upload-metadata"},
        timeout=10,
    )  # fmt: skip
    assert preflight.status_code == 400 and "access-control-allow-origin" not in preflight.headers
    open_example(browser, other, server.url)
    browser.set_input_files("#file", [source])
    refused = browser.wait_for(RESULT, timeout=45)
    assert refused["result"] == "error", f"{refused}\n{browser.describe()}"
    assert list((server.data_dir / "uploads").iterdir()) == []

    # The allowed origin: the same page uploads, and the server holds the same bytes.
    open_example(browser, allowed, server.url)
    browser.set_input_files("#file", [source])
    done = browser.wait_for(RESULT, timeout=60)
    assert done["result"] == "success", f"{done}\n{browser.describe()}"
    assert done["url"].startswith(server.url)
    assert download_sha256(done["url"]) == (size, digest)
