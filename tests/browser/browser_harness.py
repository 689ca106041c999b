"""Debian's Chromium driven by playwright-core under Node (``driver.mjs``), one JSON line per command.

Why Node and not Python's playwright package: Node and npm are already required by the test suite
(tests/js), playwright-core is one npm package with no dependencies that never downloads a browser, and
it is pinned by a lock file like tus-js-client. pytest stays in charge: it sends one command at a time and
can kill or restart a server between two of them.
"""

from __future__ import annotations

import functools
import http.server
import json
import queue
import shutil
import subprocess
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import Any

import pytest

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
DRIVER = HERE / "driver.mjs"
WEB_DIR = ROOT / "web"
STATIC_DIR = ROOT / "tusedge" / "server" / "static"
VENDOR_VERSION_FILE = STATIC_DIR / "vendor" / "VERSION"
EXAMPLE_DIR = ROOT / "examples" / "browser"
UPPY_DIST = HERE / "node_modules" / "uppy" / "dist"
MiB = 1024 * 1024


def chromium_executable() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        pytest.fail("the browser tests need Debian's Chromium: apt-get install -y chromium", pytrace=False)
    return found


def _pinned(package_dir: Path, name: str) -> str:
    version: str = json.loads((package_dir / "package.json").read_text())["dependencies"][name]
    return version


def _installed(package_dir: Path, name: str) -> str | None:
    manifest = package_dir / "node_modules" / name / "package.json"
    if not manifest.is_file():
        return None
    version: str = json.loads(manifest.read_text())["version"]
    return version


def _run(cmd: list[str], cwd: Path, timeout: float) -> None:
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        pytest.fail(f"{' '.join(cmd)} in {cwd} failed (exit {proc.returncode}):\n{proc.stdout}\n{proc.stderr}")


def node_with_playwright() -> str:
    """``node``, with tests/browser's pinned packages (playwright-core, uppy) installed (``npm ci`` when
    missing or stale)."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.fail("the browser tests need Node.js (>= 18) and npm on PATH (apt-get install nodejs npm)")
    if any(_installed(HERE, name) != _pinned(HERE, name) for name in ("playwright-core", "uppy")):
        _run([npm, "ci", "--no-audit", "--no-fund"], HERE, timeout=600)
    return node


def ensure_page_built() -> None:
    """The upload page's copy of tus-js-client is committed (tests/test_vendored_page.py holds it to the npm
    package); a copy for another version than web/package.json pins is a stale checkout, not a test result."""
    wanted = f"tus-js-client {_pinned(WEB_DIR, 'tus-js-client')}"
    if not VENDOR_VERSION_FILE.is_file() or VENDOR_VERSION_FILE.read_text().strip() != wanted:
        pytest.fail(f"{VENDOR_VERSION_FILE} does not name {wanted}: run `npm --prefix web ci && npm --prefix web "
                    "run build` after changing the pinned version, and commit the result", pytrace=False)  # fmt: skip


class DriverError(AssertionError):
    """A command failed in the browser (a timeout included); the message carries the page's console."""


class Browser:
    """One ``driver.mjs`` process and the Chromium it runs, with a persistent profile in ``profile_dir``.

    Every call has a timeout: the driver's own (``timeoutMs``) and a longer one here, after which the
    driver is killed, so a hung browser cannot hang the test run.
    """

    def __init__(self, node: str, profile_dir: Path, log_path: Path) -> None:
        self.profile_dir = profile_dir
        self.console: list[str] = []
        self._log = log_path.open("w")
        self._proc = subprocess.Popen(
            [node, str(DRIVER)],
            cwd=HERE,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            text=True,
            bufsize=1,
        )
        self._answers: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self._next_id = 0
        self._reader = threading.Thread(target=self._pump, daemon=True)
        self._reader.start()

    def _pump(self) -> None:
        assert self._proc.stdout is not None
        for raw in self._proc.stdout:
            try:
                message: dict[str, Any] = json.loads(raw)
            except json.JSONDecodeError:
                self.console.append(f"[driver] {raw.rstrip()}")
                continue
            if "event" in message:
                self.console.append(f"[{message['event']}:{message.get('type', '')}] {message.get('text', '')}")
            else:
                self._answers.put(message)
        self._answers.put(None)

    def call(self, cmd: str, timeout: float = 30.0, **args: Any) -> Any:
        self._next_id += 1
        ident = self._next_id
        line = json.dumps({"id": ident, "cmd": cmd, "args": {**args, "timeoutMs": int(timeout * 1000)}})
        assert self._proc.stdin is not None
        try:
            self._proc.stdin.write(line + "\n")
            self._proc.stdin.flush()
        except BrokenPipeError:
            raise DriverError(f"driver.mjs is gone before {cmd}\n{self.describe()}") from None
        deadline = time.monotonic() + timeout + 15
        while True:
            try:
                answer = self._answers.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                self.kill()
                raise DriverError(f"no answer to {cmd} within {timeout + 15:.0f} s\n{self.describe()}") from None
            if answer is None:
                raise DriverError(f"driver.mjs ended during {cmd}\n{self.describe()}")
            if answer.get("id") == ident:
                break
        if not answer.get("ok"):
            raise DriverError(f"{cmd} {json.dumps(args)[:300]} failed: {answer.get('error')}\n{self.describe()}")
        return answer.get("result")

    # --- commands -------------------------------------------------------------------------------------
    def launch(self, extra_args: list[str] | None = None) -> Browser:
        """``extra_args``: more Chromium flags (e.g. a pinned certificate, QUIC forced for an origin)."""
        self.call("launch", timeout=60, executablePath=chromium_executable(), userDataDir=str(self.profile_dir),
                  extraArgs=extra_args or [])  # fmt: skip
        return self

    def restart(self) -> None:
        """Close the browser and start it again on the same profile (localStorage survives)."""
        self.call("close", timeout=30)
        self.launch()

    def goto(self, url: str, timeout: float = 30) -> Any:
        return self.call("goto", timeout=timeout, url=url)

    def reload(self, timeout: float = 30) -> Any:
        return self.call("reload", timeout=timeout)

    def evaluate(self, expression: str, arg: Any = None, timeout: float = 30) -> Any:
        return self.call("evaluate", timeout=timeout, expression=expression, arg=arg)

    def wait_for(self, expression: str, timeout: float, arg: Any = None, polling_ms: int = 100) -> Any:
        """Wait until ``expression`` (a function of ``arg``) returns something truthy in the page; return it."""
        return self.call("waitFor", timeout=timeout, expression=expression, arg=arg, pollingMs=polling_ms)

    def set_input_files(self, selector: str, files: list[Path]) -> None:
        self.call("setInputFiles", selector=selector, files=[str(f) for f in files])

    def click(self, selector: str) -> None:
        self.call("click", selector=selector)

    def screenshot(self, path: Path, selector: str | None = None) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.call("screenshot", path=str(path), selector=selector)

    def throttle(self, upload_bytes_per_second: int) -> None:
        """Limit what the page may send (Chromium's network emulation); 0 lifts the limit."""
        self.call("throttle", uploadBytesPerSecond=upload_bytes_per_second)

    # --- life -----------------------------------------------------------------------------------------
    def describe(self) -> str:
        return "--- browser console (tail) ---\n" + "\n".join(self.console[-40:])

    def kill(self) -> None:
        if self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait(10)

    def close(self) -> None:
        if self._proc.poll() is None:
            try:
                self.call("exit", timeout=20)
                self._proc.wait(20)
            except (DriverError, subprocess.TimeoutExpired):
                self.kill()
        self._reader.join(10)
        if self._proc.stdin is not None:
            self._proc.stdin.close()
        if self._proc.stdout is not None:
            self._proc.stdout.close()
        self._log.close()

    def __enter__(self) -> Browser:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


class StaticSite:
    """A second, independent web server on another 127.0.0.1 port: another origin for CORS tests."""

    def __init__(self, directory: Path) -> None:
        handler = functools.partial(_QuietHandler, directory=str(directory))
        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
        self._thread.start()

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(10)
