"""Settings -> Hypercorn Config -> Hypercorn's runner (one process, or ``workers`` processes).

Transports (docs/http2-http3.md): plain ``http://`` serves HTTP/1.1 and cleartext HTTP/2 (h2c, by prior
knowledge or ``Upgrade``). With ``certfile``/``keyfile`` it is ``https://`` with HTTP/2 or HTTP/1.1 chosen by
ALPN, and ``http3`` adds QUIC on the same port number over UDP, announced by ``Alt-Svc: h3=":PORT"``.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import sys

from hypercorn.config import Config
from hypercorn.run import run
from starlette.types import ASGIApp

from tusedge.config import Settings
from tusedge.server import hypercorn_fixes
from tusedge.server.hypercorn_fixes.h2 import H2_MAX_FRAME_BYTES
from tusedge.server.metrics import prepare_multiprocess
from tusedge.server.workers import run_workers
from tusedge.state.database import create_engine, create_schema

ALPN_PROTOCOLS = ["h2", "http/1.1"]


def hypercorn_config(settings: Settings) -> Config:
    config = Config()
    host = f"[{settings.host}]" if ":" in settings.host else settings.host
    config.bind = [f"{host}:{settings.port}"]
    config.application_path = "tusedge.server.serve:worker_app()"
    config.workers = settings.workers if settings.workers > 1 else 0  # 0: serve in this process
    # Hypercorn's own log is startup, shutdown and errors only (no access log); it stays at INFO so the
    # "Running on <url>" line, which scripts and our tests read the port from, is always printed.
    config.loglevel = "DEBUG" if settings.log_level == "debug" else "INFO"
    config.accesslog = None
    config.errorlog = "-"
    # SIGTERM first drains (tusedge/server/drain.py: request bodies get drain_timeout_s); this is what
    # Hypercorn then gives the connections left (a download, resumable with Range) before it cancels them.
    config.graceful_timeout = 5.0
    # Hypercorn's default of 5 s closes connections of clients that pause between PATCHes (hashing the
    # next chunk, backing off) and races with a request arriving as the timer fires on a stalled machine.
    config.keep_alive_timeout = settings.keep_alive_s
    # Hypercorn's default 16 MiB body buffer per stream bounds memory; the body is consumed as it comes.
    try:
        import uvloop  # noqa: F401

        config.worker_class = "uvloop"
    except ImportError:
        config.worker_class = "asyncio"
    # Hypercorn reads it for h2's frame size limit; hypercorn_fixes.h2 also advertises it, with the windows.
    config.h2_max_inbound_frame_size = H2_MAX_FRAME_BYTES
    if settings.certfile:
        config.certfile = settings.certfile
        config.keyfile = settings.keyfile
        config.alpn_protocols = list(ALPN_PROTOCOLS)
        if settings.http3:
            config.quic_bind = [f"{host}:{settings.port}"]
    return config


def bind_same_port(host: str, attempts: int = 50) -> tuple[socket.socket, socket.socket]:
    """A TCP and a UDP socket bound to the same free port on ``host``.

    ``Alt-Svc: h3=":PORT"`` names one port for both, so with port 0 we cannot let TCP and UDP pick
    their own: we bind TCP to a free port, then UDP to that number, and retry when UDP is taken.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    for _ in range(attempts):
        tcp = socket.socket(family, socket.SOCK_STREAM)
        udp = socket.socket(family, socket.SOCK_DGRAM)
        try:
            tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            tcp.bind((host, 0))
            udp.bind((host, tcp.getsockname()[1]))
        except OSError:
            tcp.close()
            udp.close()
            continue
        return tcp, udp
    raise OSError(f"no port on {host} is free for both TCP and UDP")


def worker_app() -> ASGIApp:
    """Hypercorn's entry point in every server process: Hypercorn's fixes first, then the app."""
    from tusedge.server.app import app_from_environment

    text = os.environ.get("TUSEDGE_SETTINGS_JSON")  # set by serve() for its workers
    hypercorn_fixes.install(Settings.from_json(text).hypercorn_fixes_off if text else ())
    return app_from_environment()


async def _prepare(settings: Settings) -> None:
    """Create the data folder and schema once, before workers start (they would race for it)."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = create_engine(settings.effective_database_url)
    try:
        await create_schema(engine)
    finally:
        await engine.dispose()


def serve(settings: Settings) -> int:
    try:
        hypercorn_fixes.check(settings.hypercorn_fixes_off)  # before anything starts, in this process
    except hypercorn_fixes.FixesMismatch as exc:
        print(f"tusedge: {exc}", file=sys.stderr)
        return 2
    asyncio.run(_prepare(settings))
    os.environ["TUSEDGE_SETTINGS_JSON"] = settings.to_json()
    metrics_dir = prepare_multiprocess() if settings.workers > 1 and settings.metrics else None
    config = hypercorn_config(settings)
    if settings.http3 and settings.port == 0:
        tcp, udp = bind_same_port(settings.host)
        # Hypercorn adopts already-bound sockets through fd:// binds; detach() hands the descriptors over.
        config.bind = [f"fd://{tcp.detach()}"]
        config.quic_bind = [f"fd://{udp.detach()}"]
    try:
        return run(config) if settings.workers == 1 else run_workers(config, settings.workers)
    finally:
        if metrics_dir is not None:
            shutil.rmtree(metrics_dir, ignore_errors=True)
