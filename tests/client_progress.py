"""How far a running ``tusedge upload`` process has got, read from the server: the offsets of the parts the
client recorded in its resume store. Tests interrupt a client once it has made progress (observable state),
never after a fixed sleep."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import httpx

from tusedge.client.fingerprint import fingerprint
from tusedge.client.resume import ResumeStore

TUS = {"Tus-Resumable": "1.0.0"}


def server_offsets(store: Path, source: Path, endpoint: str) -> list[int]:
    """The offsets the server reports for the parts the client recorded in its resume store."""
    stored = ResumeStore(store).get(fingerprint(source), endpoint)
    if stored is None:
        return []
    return [int(httpx.head(url, headers=TUS, timeout=10).headers["Upload-Offset"]) for url in stored.parts]


def settled_offsets(store: Path, source: Path, endpoint: str) -> list[int]:
    """Offsets once the server has finished with the requests of a killed client (two equal readings)."""
    previous = server_offsets(store, source, endpoint)
    while True:
        time.sleep(0.5)
        current = server_offsets(store, source, endpoint)
        if current == previous:
            return current
        previous = current


def wait_for_progress(
    store: Path, source: Path, endpoint: str, at_least: int, proc: subprocess.Popen[str] | subprocess.Popen[bytes]
) -> None:
    """Until the server holds ``at_least`` bytes of the client's parts (the client still running)."""
    deadline = time.monotonic() + 60
    while sum(server_offsets(store, source, endpoint)) < at_least:
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the upload made no progress"
        time.sleep(0.05)
