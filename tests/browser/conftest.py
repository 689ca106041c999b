"""Fixtures of the browser tests: Debian's Chromium through ``driver.mjs``, and static web servers on other
ports (other origins)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from browser.browser_harness import Browser, StaticSite, ensure_page_built, node_with_playwright


@pytest.fixture(scope="session")
def browser_node() -> str:
    """``node`` with playwright-core installed, and the page's committed tus-js-client at the pinned version."""
    ensure_page_built()
    return node_with_playwright()


@pytest.fixture
def browser(browser_node: str, tmp_path: Path) -> Iterator[Browser]:
    """A fresh headless Chromium with its own profile folder (so localStorage starts empty)."""
    with Browser(browser_node, tmp_path / "chromium-profile", tmp_path / "driver.stderr") as launched:
        launched.launch()
        yield launched


@pytest.fixture
def static_site() -> Iterator[Callable[[Path], StaticSite]]:
    """``static_site(folder)`` serves ``folder`` on a new 127.0.0.1 port; all stop at teardown."""
    sites: list[StaticSite] = []

    def start(folder: Path) -> StaticSite:
        site = StaticSite(folder)
        sites.append(site)
        return site

    try:
        yield start
    finally:
        for site in sites:
            site.close()
