"""The tus-js-client harness: runs ``tests/js/upload.mjs`` (real tus-js-client under Node) and checks what a
server holds over plain HTTP. Shared by the tus-js-client, concatenation and browser-adjacent tests.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import queue
import shutil
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol

import httpx
import pytest

JS_DIR = Path(__file__).resolve().parent / "js"
UPLOAD_SCRIPT = JS_DIR / "upload.mjs"
MiB = 1024 * 1024
TUS_HEADERS = {"Tus-Resumable": "1.0.0"}
EXIT_ABORTED = 3


class TusServer(Protocol):
    """What these tests use of ``tests/conftest.py``'s ``ServerProcess`` (the ``tusedge_server`` fixture)."""

    log: list[str]

    @property
    def url(self) -> str: ...

    def kill(self) -> None: ...

    def start(self, timeout: float = ...) -> object: ...


# ---------------------------------------------------------------------------------------------------------
# The Node harness


def _pinned_dependencies() -> dict[str, str]:
    package = json.loads((JS_DIR / "package.json").read_text())
    deps: dict[str, str] = package["dependencies"]
    return deps


def _installed_version(name: str) -> str | None:
    manifest = JS_DIR / "node_modules" / name / "package.json"
    if not manifest.is_file():
        return None
    version: str = json.loads(manifest.read_text())["version"]
    return version


def _js_dependencies_installed() -> bool:
    return all(_installed_version(name) == version for name, version in _pinned_dependencies().items())


@pytest.fixture(scope="session")
def node_executable() -> str:
    """The ``node`` binary, with tests/js's pinned packages installed (``npm ci`` when they are missing or stale)."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.fail(
            "the tus-js-client tests need Node.js (>= 18) and npm on PATH (e.g. apt-get install nodejs npm)",
            pytrace=False,
        )
    version = subprocess.run([node, "--version"], capture_output=True, text=True, timeout=30).stdout.strip()
    major = int(version.lstrip("v").split(".")[0]) if version.startswith("v") else 0
    if major < 18:
        pytest.fail(
            f"the tus-js-client tests need Node.js >= 18 (tus-js-client 4), found {version or 'an unknown version'}",
            pytrace=False,
        )
    if not _js_dependencies_installed():
        proc = subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund"], cwd=JS_DIR, capture_output=True, text=True, timeout=600
        )
        if proc.returncode != 0 or not _js_dependencies_installed():
            pytest.fail(
                f"npm ci in {JS_DIR} failed (exit {proc.returncode}):\n{proc.stdout}\n{proc.stderr}", pytrace=False
            )
    return node


@dataclass
class UploadResult:
    """A finished ``upload.mjs`` run: its exit code, its JSON lines and its stderr."""

    returncode: int
    lines: list[dict[str, Any]]
    stderr: str

    @property
    def final(self) -> dict[str, Any]:
        assert self.lines, f"upload.mjs printed nothing (exit {self.returncode}); stderr:\n{self.stderr}"
        return self.lines[-1]

    def events(self, name: str) -> list[dict[str, Any]]:
        return [line for line in self.lines if line.get("event") == name]

    def describe(self, server: TusServer) -> str:
        """Everything useful for a failure message: the client's output and the tail of the server's log."""
        shown = "\n".join(json.dumps(line) for line in self.lines)
        server_log = "".join(server.log[-60:])
        return (
            f"upload.mjs exit {self.returncode}\n--- stdout ---\n{shown}\n--- stderr ---\n{self.stderr}"
            f"\n--- server log (tail) ---\n{server_log}"
        )


class UploadProcess:
    """``node upload.mjs ...`` running in the background; its stdout JSON lines are read as they come."""

    def __init__(self, node: str, args: list[str], stderr_path: Path) -> None:
        self._stderr_path = stderr_path
        self._stderr = stderr_path.open("w")
        self.proc = subprocess.Popen(
            [node, str(UPLOAD_SCRIPT), *args],
            cwd=JS_DIR,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
        )
        self.lines: list[dict[str, Any]] = []
        self._queue: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self._reader = threading.Thread(target=self._pump, daemon=True)
        self._reader.start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            text = raw.strip()
            if not text:
                continue
            try:
                line: dict[str, Any] = json.loads(text)
            except json.JSONDecodeError:
                line = {"event": "non-json-output", "text": text}
            self.lines.append(line)
            self._queue.put(line)
        self._queue.put(None)  # end of output

    def wait_for_event(self, name: str, timeout: float) -> dict[str, Any]:
        """The next line with ``"event": name``; fails if the process ends or the time runs out first."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                pytest.fail(f"upload.mjs printed no {name!r} event within {timeout} s; lines so far: {self.lines}")
            if line is None:
                pytest.fail(f"upload.mjs ended before a {name!r} event: {self.result_after_exit()}")
            if line.get("event") == name:
                return line

    def running(self) -> bool:
        return self.proc.poll() is None

    def wait(self, timeout: float) -> UploadResult:
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            pytest.fail(f"upload.mjs did not finish within {timeout} s: {self.result_after_exit()}")
        return self.result_after_exit()

    def result_after_exit(self) -> UploadResult:
        self.proc.wait(10)
        self._reader.join(10)
        self._stderr.close()
        return UploadResult(self.proc.returncode, list(self.lines), self._stderr_path.read_text())

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def __enter__(self) -> UploadProcess:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.kill()
        self._reader.join(10)
        self._stderr.close()
        if self.proc.stdout is not None:
            self.proc.stdout.close()


def run_upload(node: str, args: list[str], tmp_path: Path, timeout: float) -> UploadResult:
    """Run ``upload.mjs`` to the end (killed and failed after ``timeout`` seconds)."""
    stderr_path = tmp_path / f"upload-{time.monotonic_ns()}.stderr"
    with UploadProcess(node, args, stderr_path) as upload:
        return upload.wait(timeout)


# ---------------------------------------------------------------------------------------------------------
# Files and plain HTTP checks


def make_random_file(path: Path, size: int) -> str:
    """Write ``size`` random bytes to ``path``; return their SHA-256 (hex)."""
    digest = hashlib.sha256()
    with path.open("wb") as out:
        remaining = size
        while remaining:
            block = os.urandom(min(MiB, remaining))
            digest.update(block)
            out.write(block)
            remaining -= len(block)
    return digest.hexdigest()


def download_sha256(url: str) -> tuple[int, str]:
    """GET ``url`` (no tus headers: a plain download) and return (byte count, SHA-256 hex)."""
    digest = hashlib.sha256()
    count = 0
    with httpx.stream("GET", url, timeout=60) as response:
        assert response.status_code == 200, f"GET {url} -> {response.status_code} {response.read()!r}"
        for block in response.iter_bytes():
            digest.update(block)
            count += len(block)
    return count, digest.hexdigest()


def tus_head(url: str) -> httpx.Response:
    response = httpx.head(url, headers=TUS_HEADERS, timeout=10)
    assert response.status_code in (200, 204), f"HEAD {url} -> {response.status_code} {dict(response.headers)}"
    return response


def upload_offset(url: str) -> int:
    return int(tus_head(url).headers["Upload-Offset"])


def parse_metadata(header: str) -> dict[str, str | None]:
    """Decode an ``Upload-Metadata`` header: ``key base64value`` pairs separated by commas (value optional)."""
    metadata: dict[str, str | None] = {}
    for pair in filter(None, (part.strip() for part in header.split(","))):
        key, _, value = pair.partition(" ")
        metadata[key] = base64.b64decode(value).decode("utf-8") if value else None
    return metadata
