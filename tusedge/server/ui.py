"""The browser upload page (docs/browser.md): ``GET /`` serves it, ``/ui/`` its scripts and styles.

The page drives tus-js-client's browser build against our own upload endpoint. A copy of it is kept in
``static/vendor/`` (with its licence), so ``pip install`` alone gives a working page; ``web/build.mjs``
refreshes it from the npm package pinned in ``web/package-lock.json``, and tests/test_vendored_page.py
holds the copy to that package's published file. Without it (an installation that lost it) the page still
loads and tells the visitor how to rebuild it, and the server logs a warning when it starts.
"""

from __future__ import annotations

import html
import logging
import os
from pathlib import Path

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from tusedge.config import Settings

log = logging.getLogger("tusedge")

PAGE_TEMPLATE = Path(__file__).resolve().parent / "ui.html"
STATIC_DIR = Path(__file__).resolve().parent / "static"
ASSETS_PATH = "/ui"
VENDOR_SCRIPT = Path("vendor") / "tus.min.js"
BUILD_COMMAND = "npm --prefix web ci && npm --prefix web run build"

# Everything the page loads comes from our origin; it talks to the upload endpoint on the same origin.
PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
        "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


def render_page(settings: Settings, template_path: Path = PAGE_TEMPLATE) -> str:
    """The page's HTML with the upload endpoint (a path on this origin) filled in."""
    template = template_path.read_text(encoding="utf-8")
    return template.replace("{{endpoint}}", html.escape(settings.base_path, quote=True)).replace(
        "{{assets}}", ASSETS_PATH
    )


class AssetFiles(StaticFiles):
    """Starlette's StaticFiles, except that a path with a NUL byte (``/ui/%00``: the OS refuses such names,
    with a ValueError rather than an OSError) is a file that does not exist, 404, not a 500."""

    def lookup_path(self, path: str) -> tuple[str, os.stat_result | None]:
        if "\x00" in path:
            return "", None
        return super().lookup_path(path)


class UploadPage:
    """Routes of the upload page. ``static_dir`` holds ``upload.js``, ``upload.css`` and ``vendor/``.

    An installation without the page's own files (package data left out of a wheel) serves no page and
    logs why, rather than failing to start: the upload endpoint does not depend on the page.
    """

    def __init__(self, settings: Settings, static_dir: Path = STATIC_DIR, template: Path = PAGE_TEMPLATE) -> None:
        self.static_dir = static_dir
        self.template = template
        self.html = render_page(settings, template) if self.installed else ""

    @property
    def installed(self) -> bool:
        return self.template.is_file() and (self.static_dir / "upload.js").is_file()

    @property
    def vendor_script(self) -> Path:
        return self.static_dir / VENDOR_SCRIPT

    def warn_if_unbuilt(self) -> bool:
        """Log a warning when the page cannot work (not installed, or tus-js-client not copied in)."""
        if not self.installed:
            log.warning("upload page: its files are not installed (%s, %s), so / serves no page", self.template,
                        self.static_dir / "upload.js")  # fmt: skip
            return True
        if self.vendor_script.is_file():
            return False
        log.warning(
            "upload page: %s is missing, so the page at / cannot upload; build it in the source folder with: %s",
            self.vendor_script,
            BUILD_COMMAND,
        )
        return True

    def routes(self) -> list[BaseRoute]:
        if not self.installed:
            return []
        return [
            Route("/", self.page, methods=["GET"]),
            Mount(ASSETS_PATH, app=AssetFiles(directory=self.static_dir)),
        ]

    async def page(self, request: Request) -> Response:
        return HTMLResponse(self.html, headers=PAGE_HEADERS)
