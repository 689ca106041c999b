"""``python -m benchmarks.app_cpu``: the app's own CPU per request, without Hypercorn or a socket.

The whole app (every middleware, routes, service, real SQLite, files and flock locks) is called as ASGI in
this process, under uvloop, and the process CPU is read around it: OPTIONS and HEAD one at a time in
groups of 20, and small uploads (POST + PATCH of 64 KiB + HEAD) 32 at a time. Beside the server benchmark
(``--only small``), whose figure also holds Hypercorn's HTTP/1.1 parsing, this shows the app's share with
little noise from the client (which is not running).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import uvloop

from tusedge.config import Settings
from tusedge.server.app import create_app

TUS = {"Tus-Resumable": "1.0.0"}
Message = dict[str, Any]


async def call(
    app: Any, method: str, path: str, headers: dict[str, str], body: bytes = b""
) -> tuple[int, dict[str, str]]:
    """One request straight into the ASGI app: (status, response headers)."""
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method, "scheme": "http",
        "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "",
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()] + [(b"host", b"tusedge.test")],
        "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 80),
    }  # fmt: skip
    sent: list[Message] = []
    pending = [{"type": "http.request", "body": body, "more_body": False}]

    async def receive() -> Message:
        if pending:
            return pending.pop()
        await asyncio.Event().wait()  # the client never goes away
        raise AssertionError("unreachable")

    async def send(message: Message) -> None:
        sent.append(message)

    await app(scope, receive, send)
    start = sent[0]
    return start["status"], {k.decode(): v.decode() for k, v in start["headers"]}


def cpu_per(count: int, started: float) -> float:
    return (time.process_time() - started) / count


async def run(uploads: int, requests: int) -> None:
    work = Path(tempfile.mkdtemp(prefix="tusedge-app-cpu-"))
    try:
        app = create_app(Settings(data_dir=work, access_log="off"))
        async with app.router.lifespan_context(app):
            body = os.urandom(64 * 1024)

            async def upload() -> None:
                status, headers = await call(app, "POST", "/files/", {**TUS, "Upload-Length": str(len(body))})
                assert status == 201, status
                location = headers["location"]
                path = location[location.index("/files/") :]
                patch = {**TUS, "Upload-Offset": "0", "Content-Type": "application/offset+octet-stream",
                         "Content-Length": str(len(body))}  # fmt: skip
                status, _ = await call(app, "PATCH", path, patch, body)
                assert status == 204, status
                status, headers = await call(app, "HEAD", path, TUS)
                assert headers["upload-offset"] == str(len(body))

            await upload()
            _status, headers = await call(app, "POST", "/files/", {**TUS, "Upload-Length": "10"})
            one = headers["location"][headers["location"].index("/files/") :]
            cases: list[tuple[str, Callable[[], Awaitable[Any]], int, int]] = [
                ("OPTIONS", lambda: call(app, "OPTIONS", "/files/", {}), requests, 20),
                ("HEAD", lambda: call(app, "HEAD", one, TUS), requests, 20),
                ("upload (POST + PATCH 64 KiB + HEAD)", upload, uploads, 32),
            ]
            for name, make, count, at_once in cases:
                for _ in range(at_once):
                    await make()
                started, wall = time.process_time(), time.perf_counter()
                for _ in range(count // at_once):
                    await asyncio.gather(*(make() for _ in range(at_once)))
                done = count // at_once * at_once
                rate = done / (time.perf_counter() - wall)
                print(f"{name}: {cpu_per(done, started) * 1e3:.3f} ms CPU each ({rate:.0f}/s)", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.app_cpu", description=__doc__.split("\n\n")[0])
    parser.add_argument("--uploads", type=int, default=640)
    parser.add_argument("--requests", type=int, default=2000)
    args = parser.parse_args(argv)
    uvloop.run(run(args.uploads, args.requests))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
