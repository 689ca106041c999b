"""The upload page's routes (tusedge/server/ui.py) on real servers, and the page when the build step
that copies tus-js-client in was not run."""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from server_process import ServerFactory, ServerProcess

from browser.browser_harness import STATIC_DIR, Browser, StaticSite
from tusedge.config import Settings
from tusedge.server.ui import BUILD_COMMAND, UploadPage, render_page

TUS = {"Tus-Resumable": "1.0.0"}


def test_page_and_its_files_are_served_with_a_strict_content_security_policy(
    browser_node: str, tusedge_server: ServerProcess
) -> None:
    page = httpx.get(tusedge_server.origin + "/", timeout=10)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "connect-src 'self'" in csp and "unsafe" not in csp
    assert '<meta name="tusedge-endpoint" content="/files/">' in page.text
    for path, kind in [("/ui/upload.js", "javascript"), ("/ui/upload.css", "text/css"),
                       ("/ui/vendor/tus.min.js", "javascript")]:  # fmt: skip
        asset = httpx.get(tusedge_server.origin + path, timeout=10)
        assert asset.status_code == 200 and kind in asset.headers["content-type"], (path, asset.headers)
    # ui.py sits next to static/: a dot-dot in the path must not reach it.
    assert httpx.get(tusedge_server.origin + "/ui/%2E%2E/ui.py", timeout=10).status_code == 404


def test_no_ui_serves_neither_page_nor_files(server_factory: ServerFactory) -> None:
    server = server_factory("--no-ui")
    assert httpx.get(server.origin + "/", timeout=10).status_code == 404
    assert httpx.get(server.origin + "/ui/upload.js", timeout=10).status_code == 404
    assert httpx.options(server.url, timeout=10).status_code == 204  # tus itself is unaffected
    assert not any("upload page:" in line for line in server.log)


def test_page_and_tus_share_the_root_when_the_base_path_is_slash(server_factory: ServerFactory) -> None:
    server = server_factory("--base-path", "/")
    page = httpx.get(server.origin + "/", timeout=10)
    assert page.status_code == 200 and '<meta name="tusedge-endpoint" content="/">' in page.text
    created = httpx.post(server.origin + "/", headers={**TUS, "Upload-Length": "3"}, timeout=10)
    assert created.status_code == 201, created.text
    location = created.headers["location"]
    patched = httpx.patch(
        location,
        headers={**TUS, "Upload-Offset": "0", "Content-Type": "application/offset+octet-stream"},
        content=b"abc",
        timeout=10,
    )
    assert patched.status_code == 204
    assert httpx.get(location, timeout=10).content == b"abc"
    assert httpx.get(server.origin + "/ui/upload.js", timeout=10).status_code == 200


def test_missing_library_is_logged_with_the_build_command(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    unbuilt = tmp_path / "static"
    unbuilt.mkdir()
    shutil.copy(STATIC_DIR / "upload.js", unbuilt / "upload.js")  # our own files, but no vendor/
    page = UploadPage(Settings(data_dir=tmp_path / "data"), static_dir=unbuilt)
    with caplog.at_level(logging.WARNING, logger="tusedge"):
        assert page.warn_if_unbuilt() is True
    assert BUILD_COMMAND in caplog.text and "vendor/tus.min.js" in caplog.text
    caplog.clear()
    built = UploadPage(Settings(data_dir=tmp_path / "data"))
    assert built.warn_if_unbuilt() is False and caplog.text == ""


def test_page_without_the_library_says_how_to_build_it(
    browser: Browser, static_site: Callable[[Path], StaticSite], tmp_path: Path
) -> None:
    """The page as tusedge renders it, with its own files but no vendor/tus.min.js behind /ui/."""
    site_dir = tmp_path / "site"
    (site_dir / "ui").mkdir(parents=True)
    (site_dir / "index.html").write_text(render_page(Settings(data_dir=tmp_path / "data")))
    for name in ("upload.js", "upload.css"):
        shutil.copy(STATIC_DIR / name, site_dir / "ui" / name)
    site = static_site(site_dir)
    assert browser.goto(site.origin + "/index.html") == 200
    browser.wait_for("() => document.body.dataset.state === 'unbuilt'", timeout=20)
    shown = browser.evaluate(
        """() => ({ visible: !document.getElementById('unbuilt').hidden,
                    text: document.getElementById('unbuilt').innerText,
                    disabled: document.getElementById('file-input').disabled })"""
    )
    assert shown["visible"] and shown["disabled"], shown
    assert BUILD_COMMAND in shown["text"], shown["text"]


def test_installation_without_the_page_files_serves_no_page_and_says_why(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """E.g. a wheel built without the package data: the server must still start and take uploads."""
    page = UploadPage(Settings(data_dir=tmp_path / "data"), static_dir=tmp_path, template=tmp_path / "ui.html")
    with caplog.at_level(logging.WARNING, logger="tusedge"):
        assert page.warn_if_unbuilt() is True
    assert "not installed" in caplog.text
    assert page.routes() == []
