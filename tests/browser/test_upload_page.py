"""tusedge's upload page in a real Chromium (Debian's), uploading with tus-js-client's browser build.

Each test chooses files from disk through the page's file input, so the browser reads them the way it
reads a user's files, and checks the server's copy by SHA-256 over a plain GET of the upload URL.
Chromium's network emulation slows the page's uploads down where a test has to act mid-upload; the
server runs at full speed.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import httpx
from js_harness import MiB, download_sha256, make_random_file, tus_head, upload_offset
from server_process import ServerFactory, ServerProcess

from browser.browser_harness import ROOT, Browser
from browser.page import row, stored_uploads, wait_done, wait_ready, wait_row

# The README's screenshot: taken on every run, written into docs/ only when asked
# (TUSEDGE_UPDATE_SCREENSHOTS=1), so that running the tests leaves the working tree clean.
SCREENSHOT = ROOT / "docs" / "screenshots" / "upload-page.png"
TUS = {"Tus-Resumable": "1.0.0"}


def held_by_server(part_urls: list[str], above: int, timeout: float = 15) -> int:
    """The bytes the server holds for these parts (sum of HEAD offsets), once it is above ``above``.

    A request cut off by a reload or a pause is committed by the server when it notices the disconnect,
    which on a busy machine can come a moment after the page has moved on.
    """
    deadline = time.monotonic() + timeout
    while True:
        held = sum(upload_offset(url) for url in part_urls)
        if held > above or time.monotonic() > deadline:
            return held
        time.sleep(0.2)


def open_page(browser: Browser, server: ServerProcess) -> dict[str, str]:
    assert browser.goto(server.origin + "/") == 200
    return wait_ready(browser)


def test_page_uploads_100mb_in_four_parallel_parts_and_server_copy_matches(
    browser: Browser, tusedge_server: ServerProcess, tmp_path: Path
) -> None:
    """The server lists concatenation in Tus-Extension, so the page splits a large file into 4 partial
    uploads and has the server concatenate them. Also takes the README's screenshot, mid-upload."""
    small = tmp_path / "notes.txt"
    small_digest = make_random_file(small, 300_000)
    big = tmp_path / "dataset.bin"
    size = 100 * MiB + 4_321  # parts of unequal size
    digest = make_random_file(big, size)

    ready = open_page(browser, tusedge_server)
    assert ready.get("concatenation") == "yes", f"the server does not advertise concatenation: {ready}"

    # A small file first: below the parallel threshold it is one plain upload, then listed as finished.
    browser.set_input_files("#file-input", [small])
    done_small = wait_done(browser, small.name, timeout=30)
    assert done_small["parallel"] == "1" and done_small["creations"] == "1", done_small
    assert download_sha256(done_small["url"]) == (300_000, small_digest)

    browser.throttle(30_000_000)  # ~3.5 s for 100 MiB: long enough to see it under way
    browser.set_input_files("#file-input", [big])
    under_way = wait_row(browser, big.name, f"Number(r.bytes) > {size // 3}", timeout=60)
    assert under_way["state"] == "uploading" and under_way["parallel"] == "4", under_way
    assert re.search(r"of 100 MiB \(\d+ %\) · [\d.]+ MiB/s · ETA \d+:\d\d$", under_way["status"]), under_way
    shot = SCREENSHOT if os.environ.get("TUSEDGE_UPDATE_SCREENSHOTS") == "1" else tmp_path / SCREENSHOT.name
    browser.screenshot(shot, selector="body")
    assert shot.stat().st_size > 10_000
    browser.throttle(0)

    done = wait_done(browser, big.name, timeout=120)
    assert done["creations"] == "4", f"expected 4 partial uploads to be created: {done}"
    url = done["url"]
    head = tus_head(url)
    assert head.headers["Upload-Length"] == str(size)
    concat = head.headers.get("Upload-Concat", "")
    assert concat.startswith("final;") and len(concat.removeprefix("final;").split()) == 4, concat
    assert download_sha256(url) == (size, digest)

    # Both are listed as finished, with download links to their upload URLs; nothing is left to resume.
    links = browser.evaluate("() => [...document.querySelectorAll('#finished-list a')].map((a) => a.href)")
    assert links == [url, done_small["url"]]
    assert stored_uploads(browser) == []
    assert not any("upload page:" in line for line in tusedge_server.log), "".join(tusedge_server.log)
    assert SCREENSHOT.stat().st_size > 10_000


def test_reload_and_browser_restart_mid_upload_continue_from_where_the_server_stands(
    browser: Browser, tusedge_server: ServerProcess, tmp_path: Path
) -> None:
    """tus-js-client keeps the partial uploads' URLs in localStorage: after a reload, and again after the
    browser is closed and started on the same profile, choosing the same file continues the same partial
    uploads from the offsets the server holds: none is created again and nothing is sent twice from 0."""
    source = tmp_path / "video.mp4"
    size = 48 * MiB
    digest = make_random_file(source, size)
    open_page(browser, tusedge_server)
    browser.throttle(8_000_000)
    browser.set_input_files("#file-input", [source])
    wait_row(browser, source.name, f"Number(r.bytes) > {size // 4}", timeout=60)
    stored = stored_uploads(browser)
    assert len(stored) == 1 and len(stored[0]["parallelUploadUrls"]) == 4, stored
    part_urls: list[str] = stored[0]["parallelUploadUrls"]

    browser.reload()
    wait_ready(browser)
    browser.throttle(8_000_000)
    # The page lists what it can continue, before the file is chosen again.
    names = browser.evaluate("() => [...document.querySelectorAll('li.resumable')].map((li) => li.dataset.name)")
    assert names == [source.name]
    held = held_by_server(part_urls, above=0)
    assert held > 0, "the server kept nothing of the parts sent before the reload"

    browser.set_input_files("#file-input", [source])
    resumed = wait_row(browser, source.name, "r.resumedFrom !== undefined && Number(r.heads) >= 4", timeout=30)
    assert resumed["resumed"] == "true" and resumed.get("creations") is None, resumed
    assert int(resumed["resumedFrom"]) >= held > 0, (resumed, held)

    # Now close the whole browser mid-upload and start it again on the same profile.
    wait_row(browser, source.name, f"Number(r.bytes) > {int(resumed['resumedFrom']) + 4 * MiB}", timeout=60)
    browser.restart()
    open_page(browser, tusedge_server)
    assert [entry["parallelUploadUrls"] for entry in stored_uploads(browser)] == [part_urls]
    held_again = held_by_server(part_urls, above=held)
    assert held_again > held, (held_again, held)
    browser.throttle(8_000_000)
    browser.set_input_files("#file-input", [source])
    done = wait_done(browser, source.name, timeout=120)
    assert done["resumed"] == "true" and done.get("creations") is None, done
    assert int(done["resumedFrom"]) >= held_again, (done, held_again)
    assert download_sha256(done["url"]) == (size, digest)


def test_upload_carries_on_through_a_server_kill_and_restart(
    browser: Browser, server_factory: ServerFactory, tmp_path: Path
) -> None:
    """``kill -9`` of the server mid-upload, then a start on the same port: the page's retryDelays carry
    every part over the gap, each continues from the offset the server committed (HEAD), and the file
    arrives intact."""
    # Write and commit often, so that the offsets the server keeps through kill -9 are well above 0 (by
    # default it gathers 4 MiB before a write, more than each part has sent when the server is killed).
    server = server_factory(
        "--write-buffer-bytes", "256KiB", "--commit-interval-bytes", "1MiB", "--commit-interval-s", "0"
    )
    source = tmp_path / "backup.tar"
    size = 40 * MiB
    digest = make_random_file(source, size)
    open_page(browser, server)
    browser.throttle(8_000_000)
    browser.set_input_files("#file-input", [source])
    before = wait_row(browser, source.name, f"Number(r.bytes) > {size * 3 // 10}", timeout=60)
    assert before["parallel"] == "4" and before.get("heads") is None, before

    server.kill()
    time.sleep(1.0)  # the page's requests fail and it starts retrying
    server.start()

    done = wait_done(browser, source.name, timeout=120)
    assert int(done["heads"]) >= 4, f"every part should have asked the restarted server for its offset: {done}"
    assert int(done["resumedFrom"]) > 0, done
    assert done["creations"] == "4", f"no part should have been created again: {done}"
    assert download_sha256(done["url"]) == (size, digest)


def test_pause_stops_sending_and_resume_continues_the_same_upload(
    browser: Browser, tusedge_server: ServerProcess, tmp_path: Path
) -> None:
    source = tmp_path / "photo.raw"
    size = 24 * MiB
    digest = make_random_file(source, size)
    open_page(browser, tusedge_server)
    browser.throttle(6_000_000)
    browser.set_input_files("#file-input", [source])
    wait_row(browser, source.name, f"Number(r.bytes) > {size // 5}", timeout=60)

    browser.click("li.upload button.pause")
    paused = wait_row(browser, source.name, "r.state === 'paused'", timeout=10)
    assert paused["status"].startswith("Paused at"), paused
    time.sleep(1.5)
    still = row(browser, source.name)
    assert still is not None and still["state"] == "paused" and still["bytes"] == paused["bytes"], (paused, still)
    (stored,) = stored_uploads(browser)
    held = held_by_server(stored["parallelUploadUrls"], above=0)
    assert 0 < held < size

    browser.click("li.upload button.pause")  # now labelled Resume
    done = wait_done(browser, source.name, timeout=60)
    assert int(done["resumedFrom"]) >= held and done["creations"] == "4", (done, held)
    assert download_sha256(done["url"]) == (size, digest)


def test_cancel_deletes_the_parts_on_the_server_and_forgets_the_upload(
    browser: Browser, tusedge_server: ServerProcess, tmp_path: Path
) -> None:
    source = tmp_path / "mistake.iso"
    size = 16 * MiB
    make_random_file(source, size)
    open_page(browser, tusedge_server)
    browser.throttle(4_000_000)
    browser.set_input_files("#file-input", [source])
    wait_row(browser, source.name, f"Number(r.bytes) > {size // 5}", timeout=60)
    (stored,) = stored_uploads(browser)
    part_urls: list[str] = stored["parallelUploadUrls"]

    browser.click("li.upload button.cancel")
    browser.wait_for("() => document.querySelectorAll('li.upload').length === 0", timeout=10)
    browser.wait_for("() => !Object.keys(localStorage).some((k) => k.startsWith('tus::'))", timeout=10)
    deadline = time.monotonic() + 15
    statuses = [0]
    while time.monotonic() < deadline:
        statuses = [httpx.head(url, headers=TUS, timeout=10).status_code for url in part_urls]
        if all(status in (404, 410) for status in statuses):
            break
        time.sleep(0.2)
    assert all(status in (404, 410) for status in statuses), statuses


def test_dropped_file_is_uploaded(browser: Browser, tusedge_server: ServerProcess) -> None:
    """A drop on the drop zone (a real DragEvent carrying a DataTransfer with a File) starts an upload."""
    open_page(browser, tusedge_server)
    browser.evaluate(
        """() => {
          const data = new DataTransfer()
          data.items.add(new File(['dropped ', 'text ü'], 'dropped.txt', { type: 'text/plain' }))
          const zone = document.getElementById('drop')
          for (const type of ['dragenter', 'dragover', 'drop']) {
            zone.dispatchEvent(new DragEvent(type, { dataTransfer: data, bubbles: true, cancelable: true }))
          }
        }"""
    )
    done = wait_done(browser, "dropped.txt", timeout=30)
    assert httpx.get(done["url"], timeout=10).content == "dropped text ü".encode()
