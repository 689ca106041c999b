"""What the access log costs (docs/deploy.md#access-log), measured two ways in one process, so that the noise of
a shared machine (other processes, the network stack, the client) weighs as little as possible:

1. the middleware alone, around an ASGI app that does nothing: microseconds per request, JSON and logfmt,
   lines written to /dev/null;
2. the whole app (``create_app``, SQLite, the store) through httpx's in-process ASGI transport: CPU
   milliseconds per small upload (POST + PATCH of 64 KiB + HEAD), access log on and off in ABBA order so
   that drift over the run hits both alike; medians.

    python -m benchmarks.access_log [--uploads 150] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from tusedge.config import Settings
from tusedge.server.access_log import AccessLog, stdout_writer
from tusedge.server.app import create_app

TUS = {"Tus-Resumable": "1.0.0"}
PATCH_HEADERS = {**TUS, "Upload-Offset": "0", "Content-Type": "application/offset+octet-stream"}
SCOPE: dict[str, Any] = {
    "type": "http", "method": "PATCH", "path": "/files/0123456789abcdef0123456789abcdef", "http_version": "1.1",
    "client": ("127.0.0.1", 5555),
    "headers": [(b"host", b"x"), (b"user-agent", b"python-httpx/0.28"), (b"tus-resumable", b"1.0.0"),
                (b"content-type", b"application/offset+octet-stream"), (b"upload-offset", b"0"),
                (b"content-length", b"65536")],
}  # fmt: skip


async def _nothing(scope: Any, receive: Any, send: Any) -> None:
    await receive()
    await send({"type": "http.response.start", "status": 204, "headers": [(b"upload-offset", b"65536")]})
    await send({"type": "http.response.body", "body": b""})


async def middleware_us(fmt: str | None, n: int = 20000) -> float:
    devnull = os.open(os.devnull, os.O_WRONLY)
    app: Any = _nothing if fmt is None else AccessLog(_nothing, fmt=fmt, base_path="/files/",
                                                       write=stdout_writer(devnull))  # fmt: skip

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"x" * 65536, "more_body": False}

    async def send(message: Any) -> None:
        pass

    started = time.perf_counter()
    for _ in range(n):
        await app(SCOPE, receive, send)
    os.close(devnull)
    return (time.perf_counter() - started) / n * 1e6


async def app_cpu_ms(access_log: str, uploads: int) -> float:
    """CPU ms per small upload through the whole app (its lines go to /dev/null)."""
    settings = Settings.from_env({}, data_dir=Path(tempfile.mkdtemp(prefix="tusedge-bench-al-")),
                                 access_log=access_log, fsync=False)  # fmt: skip
    app = create_app(settings)
    if access_log != "off":  # the lines to /dev/null, not to this benchmark's output
        devnull = os.open(os.devnull, os.O_WRONLY)
        app.user_middleware[0].kwargs["write"] = stdout_writer(devnull)
        app.middleware_stack = app.build_middleware_stack()
    body = os.urandom(65536)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
            started = time.process_time()
            for _ in range(uploads):
                created = await client.post("/files/", headers={**TUS, "Upload-Length": str(len(body))})
                url = created.headers["Location"]
                await client.patch(url, content=body, headers=PATCH_HEADERS)
                await client.head(url, headers=TUS)
            return (time.process_time() - started) / uploads * 1e3


async def run(uploads: int, rounds: int) -> None:
    print("| middleware alone | µs per request |\n| --- | --- |")
    for fmt in (None, "json", "logfmt"):
        value = statistics.median([await middleware_us(fmt) for _ in range(3)])
        print(f"| {'no access log' if fmt is None else fmt} | {value:.1f} |")
    results: dict[str, list[float]] = {"off": [], "json": []}
    for mode in ["off", "json", "json", "off"] * rounds:
        results[mode].append(await app_cpu_ms(mode, uploads))
    print(f"\n| whole app, {uploads} uploads x {2 * rounds} runs each (ABBA) | CPU ms per upload (median) | runs |")
    print("| --- | --- | --- |")
    for mode, values in results.items():
        print(f"| access log {mode} | {statistics.median(values):.2f} | {', '.join(f'{v:.2f}' for v in values)} |")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.access_log")
    parser.add_argument("--uploads", type=int, default=150)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    asyncio.run(run(args.uploads, args.rounds))


if __name__ == "__main__":
    main()
