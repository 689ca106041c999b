"""Headless Chromium over QUIC for the HTTP/3 tests: a page server on loopback that collects what the page
reports, a browser run with QUIC forced for one origin and a pinned self-signed certificate, and the
response headers Chromium read from QUIC streams (its net log)."""

from __future__ import annotations

import contextlib
import http.server
import json
import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tusedge.tls import spki_sha256

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


@contextlib.contextmanager
def page_server(page: str) -> Iterator[tuple[int, list[dict[str, Any]]]]:
    """Serves ``page`` on http://127.0.0.1:PORT/ and collects the JSON it POSTs back."""
    results: list[dict[str, Any]] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = page.encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self) -> None:
            results.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1], results
    finally:
        server.shutdown()
        server.server_close()


def run_chromium_over_quic(
    url: str, *, certfile: Path, quic_port: int, profile: Path, netlog: Path, results: list[Any], timeout_s: float
) -> None:
    """Runs headless Chromium on ``url`` with QUIC forced for 127.0.0.1:``quic_port`` (``certfile`` pinned by
    SPKI) until the page has reported into ``results``, the browser exits, or ``timeout_s`` passes."""
    assert CHROMIUM is not None
    browser = subprocess.Popen(
        [CHROMIUM, "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
         f"--user-data-dir={profile}",
         f"--ignore-certificate-errors-spki-list={spki_sha256(certfile.read_bytes())}",
         "--enable-quic", f"--origin-to-force-quic-on=127.0.0.1:{quic_port}",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-default-apps", "--no-first-run", "--no-default-browser-check", "--metrics-recording-only",
         f"--log-net-log={netlog}", url],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + timeout_s
        while not results and time.monotonic() < deadline and browser.poll() is None:
            time.sleep(0.2)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(browser.pid, signal.SIGTERM)
        try:
            browser.wait(15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(browser.pid, signal.SIGKILL)
            browser.wait(10)


def _read_netlog(netlog: Path) -> tuple[dict[str, Any], dict[int, str]]:
    """The net log (left unterminated when the browser is stopped; Chromium documents closing the event
    list as the fix) and its event type names by number."""
    text = netlog.read_text().rstrip()
    if not text.endswith("]}"):
        text = text.rstrip(",") + "]}"
    log = json.loads(text)
    return log, {number: name for name, number in log["constants"]["logEventTypes"].items()}


def quic_came_through_a_retry(netlog: Path) -> bool:
    """Whether the server's QUIC transport parameters name a Retry's connection id (RFC 9000 7.3: a
    server that sent a Retry must), from Chromium's net log."""
    log, names = _read_netlog(netlog)
    return any(
        "retry_source_connection_id" in event.get("params", {}).get("quic_transport_parameters", "")
        for event in log["events"]
        if names.get(event["type"]) == "QUIC_SESSION_TRANSPORT_PARAMETERS_RECEIVED"
    )


def quic_response_headers(netlog: Path) -> list[list[str]]:
    """Response headers Chromium read from QUIC streams, from its net log."""
    log, names = _read_netlog(netlog)
    return [
        event["params"]["headers"]
        for event in log["events"]
        if names.get(event["type"]) == "QUIC_CHROMIUM_CLIENT_STREAM_READ_RESPONSE_HEADERS"
    ]
