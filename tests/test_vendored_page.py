"""The upload page works after a plain ``pip install``: tus-js-client's browser build is kept in the
repository (tusedge/server/static/vendor/) with its licence, and these tests hold that copy to the npm
package's published files, at the version web/package-lock.json pins (``npm ci`` checks the package
against the lock file's sha512 integrity before we compare a byte)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
WEB = ROOT / "web"
VENDOR = ROOT / "tusedge" / "server" / "static" / "vendor"
PUBLISHED = {"tus.min.js": "dist/tus.min.js", "tus.min.js.map": "dist/tus.min.js.map",
             "tus-js-client.LICENSE": "LICENSE"}  # fmt: skip


def pinned_version() -> str:
    version: str = json.loads((WEB / "package.json").read_text())["dependencies"]["tus-js-client"]
    return version


def npm_package() -> Path:
    """web/node_modules/tus-js-client as ``npm ci`` installs it from the lock file (run here when missing)."""
    package = WEB / "node_modules" / "tus-js-client"
    manifest = package / "package.json"
    if not manifest.is_file() or json.loads(manifest.read_text())["version"] != pinned_version():
        npm = shutil.which("npm")
        if npm is None:
            pytest.fail("checking the vendored tus-js-client needs npm on PATH (apt-get install nodejs npm)")
        subprocess.run([npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=WEB, check=True, timeout=600)
    return package


def test_the_lock_file_pins_the_version_the_vendored_copy_names() -> None:
    lock = json.loads((WEB / "package-lock.json").read_text())
    entry = lock["packages"]["node_modules/tus-js-client"]
    assert entry["version"] == pinned_version()
    assert entry["integrity"].startswith("sha512-")
    assert (VENDOR / "VERSION").read_text() == f"tus-js-client {pinned_version()}\n"


def test_vendored_tus_js_client_is_the_npm_packages_published_file() -> None:
    package = npm_package()
    for ours, theirs in PUBLISHED.items():
        assert (VENDOR / ours).read_bytes() == (package / theirs).read_bytes(), f"vendor/{ours} differs from {theirs}"


def test_the_wheel_carries_the_upload_page_and_its_tus_js_client(tmp_path: Path) -> None:
    """What ``pip install`` installs: the page, its scripts, and the vendored tus-js-client with its licence."""
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(ROOT)],
                   check=True, timeout=300, capture_output=True)  # fmt: skip
    (wheel,) = tmp_path.glob("tusedge-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        for name in ("ui.html", "static/upload.js", "static/upload.css"):
            assert f"tusedge/server/{name}" in archive.namelist()
        for ours in [*PUBLISHED, "VERSION"]:
            assert archive.read(f"tusedge/server/static/vendor/{ours}") == (VENDOR / ours).read_bytes()
