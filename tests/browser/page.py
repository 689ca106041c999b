"""What the browser tests read from tusedge's upload page: each file's row carries ``data-*`` attributes
(``state``, ``bytes``, ``total``, ``parallel``, ``creations``, ``resumed``, ``resumedFrom``, ``heads``,
``url``, ``error``) set by ``tusedge/server/static/upload.js``."""

from __future__ import annotations

from typing import Any

from browser.browser_harness import Browser

# The row of the file called ``name`` as a plain object (its dataset plus the status line), or null.
ROW = """(name) => {
  const row = [...document.querySelectorAll('li.upload')].find((r) => r.dataset.name === name)
  return row ? { ...row.dataset, status: row.querySelector('.status').textContent } : null
}"""


def row(browser: Browser, name: str) -> dict[str, Any] | None:
    found: dict[str, Any] | None = browser.evaluate(ROW, name)
    return found


def wait_row(browser: Browser, name: str, condition: str, timeout: float) -> dict[str, Any]:
    """Wait until the row of ``name`` exists and the JS expression ``condition`` over ``r`` (the row's
    object; numbers are strings) is true; a row in the ``error`` state ends the wait at once."""
    expression = f"""(name) => {{
      const r = ({ROW})(name)
      return r && (r.state === 'error' || ({condition})) ? r : null
    }}"""
    found: dict[str, Any] = browser.wait_for(expression, timeout, arg=name)
    assert found.get("state") != "error", f"upload of {name} failed in the page: {found}\n{browser.describe()}"
    return found


def wait_done(browser: Browser, name: str, timeout: float) -> dict[str, Any]:
    return wait_row(browser, name, "r.state === 'done'", timeout)


def wait_ready(browser: Browser, timeout: float = 20) -> dict[str, Any]:
    """The page has asked the server what it supports (OPTIONS) and is ready for files."""
    ready: dict[str, Any] = browser.wait_for(
        "() => document.body.dataset.ready === 'true' ? { ...document.body.dataset } : null", timeout
    )
    return ready


def stored_uploads(browser: Browser) -> list[dict[str, Any]]:
    """tus-js-client's entries in the page's localStorage (``tus::<fingerprint>::<n>``)."""
    entries: list[dict[str, Any]] = browser.evaluate(
        """() => Object.keys(localStorage).filter((k) => k.startsWith('tus::'))
                 .map((k) => JSON.parse(localStorage.getItem(k)))"""
    )
    return entries
