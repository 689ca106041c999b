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
from tusedge.protocol.metadata import MAX_REQUEST_HEAD_BYTES
from tusedge.server import hypercorn_fixes
from tusedge.server.connections import raise_nofile_limit
from tusedge.server.hypercorn_fixes.h2 import H2_MAX_FRAME_BYTES
from tusedge.server.metrics import prepare_multiprocess
from tusedge.server.quic_steering import Steering, steer
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
    # A TLS connection that never completes its handshake sends no request either: the same bound (was
    # Hypercorn's own 60 s whatever --keep-alive-s said).
    if settings.keep_alive_s > 0:
        config.ssl_handshake_timeout = settings.keep_alive_s
    # Hypercorn's default 16 MiB body buffer per stream bounds memory; the body is consumed as it comes.
    try:
        import uvloop  # noqa: F401

        config.worker_class = "uvloop"
    except ImportError:
        config.worker_class = "asyncio"
    # One limit for a request's head, however it arrives (docs/configuration.md): h11 refuses a head that
    # is still incomplete past it, RequestFraming one that arrived whole. HTTP/2 counts 32 bytes more per
    # header (RFC 9113 6.5.2), so it advertises room for those and the app answers 431 past the limit.
    config.h11_max_incomplete_size = MAX_REQUEST_HEAD_BYTES
    config.h2_max_header_list_size = MAX_REQUEST_HEAD_BYTES + 16 * 1024
    # Read by hypercorn_fixes.tcp: a request's head must arrive within this long of its first byte.
    config.tusedge_header_timeout_s = settings.header_timeout_s  # type: ignore[attr-defined]
    # Hypercorn reads it for h2's frame size limit; hypercorn_fixes.h2 also advertises it, with the windows.
    config.h2_max_inbound_frame_size = H2_MAX_FRAME_BYTES
    if settings.certfile:
        config.certfile = settings.certfile
        config.keyfile = settings.keyfile
        config.alpn_protocols = list(ALPN_PROTOCOLS)
        if settings.http3:
            config.quic_bind = [f"{host}:{settings.port}"]
    return config


def bind_same_port_for_workers(
    host: str, workers: int, attempts: int = 50, port: int = 0
) -> tuple[socket.socket | None, list[socket.socket]]:
    """With ``port`` 0, a TCP socket on a free port of ``host`` and ``workers`` UDP sockets on that port
    number; else no TCP socket (Hypercorn binds it) and the UDP sockets on ``port``.

    With several workers every UDP socket has SO_REUSEPORT and each worker gets its own: the kernel then
    hashes each datagram's address 4-tuple to one socket of the group, so all of a QUIC connection's
    datagrams reach the one worker that holds its state (docs/http2-http3.md says what that does not cover).
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    for _ in range(attempts if port == 0 else 1):
        tcp = socket.socket(family, socket.SOCK_STREAM) if port == 0 else None
        udps: list[socket.socket] = []
        try:
            number = port
            if tcp is not None:
                tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                tcp.bind((host, 0))
                number = tcp.getsockname()[1]
            for _ in range(workers):
                udp = socket.socket(family, socket.SOCK_DGRAM)
                udps.append(udp)
                if workers > 1:
                    udp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
                udp.bind((host, number))
        except OSError:
            for sock in [*udps, *([tcp] if tcp is not None else [])]:
                sock.close()
            if port:
                raise
            continue
        return tcp, udps
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
    before, after = raise_nofile_limit()  # inherited by the worker processes
    if after != before:
        print(f"tusedge: raised the file descriptor limit (RLIMIT_NOFILE soft) from {before} to {after}",
              file=sys.stderr)  # fmt: skip
    asyncio.run(_prepare(settings))
    os.environ["TUSEDGE_SETTINGS_JSON"] = settings.to_json()
    metrics_dir = prepare_multiprocess() if settings.workers > 1 and settings.metrics else None
    config = hypercorn_config(settings)
    more_quic: list[socket.socket] = []  # with --workers: the UDP sockets of workers 2..N
    steering: list[Steering] | None = None
    if settings.http3 and (settings.port == 0 or settings.workers > 1):
        tcp, udps = bind_same_port_for_workers(settings.host, settings.workers, port=settings.port)
        if settings.workers > 1 and settings.http3_steering == "cid":
            steering = steer(udps, lambda line: print(line, file=sys.stderr))
        # Hypercorn adopts already-bound sockets through fd:// binds; detach() hands the descriptors over.
        if tcp is not None:
            config.bind = [f"fd://{tcp.detach()}"]
        config.quic_bind = [f"fd://{udps[0].detach()}"]
        more_quic = udps[1:]
    try:
        return run(config) if settings.workers == 1 else run_workers(config, settings.workers, more_quic, steering)
    finally:
        if metrics_dir is not None:
            shutil.rmtree(metrics_dir, ignore_errors=True)
