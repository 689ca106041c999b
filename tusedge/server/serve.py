"""Settings -> Hypercorn Config -> Hypercorn's runner (one process, or ``workers`` processes)."""

from __future__ import annotations

import asyncio
import os

from hypercorn.config import Config
from hypercorn.run import run

from tusedge.config import Settings
from tusedge.state.database import create_engine, create_schema


def hypercorn_config(settings: Settings) -> Config:
    config = Config()
    host = f"[{settings.host}]" if ":" in settings.host else settings.host
    config.bind = [f"{host}:{settings.port}"]
    config.application_path = "tusedge.server.app:app_from_environment()"
    config.workers = settings.workers if settings.workers > 1 else 0  # 0: serve in this process
    # Hypercorn's own log is startup, shutdown and errors only (no access log); it stays at INFO so the
    # "Running on <url>" line, which scripts and our tests read the port from, is always printed.
    config.loglevel = "DEBUG" if settings.log_level == "debug" else "INFO"
    config.accesslog = None
    config.errorlog = "-"
    config.graceful_timeout = 5.0
    # Hypercorn's default 16 MiB body buffer per stream bounds memory; the body is consumed as it comes.
    try:
        import uvloop  # noqa: F401

        config.worker_class = "uvloop"
    except ImportError:
        config.worker_class = "asyncio"
    if settings.certfile:
        config.certfile = settings.certfile
        config.keyfile = settings.keyfile
        if settings.http3:
            config.quic_bind = [f"{host}:{settings.port}"]
    return config


async def _prepare(settings: Settings) -> None:
    """Create the data folder and schema once, before workers start (they would race for it)."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = create_engine(settings.effective_database_url)
    try:
        await create_schema(engine)
    finally:
        await engine.dispose()


def serve(settings: Settings) -> int:
    asyncio.run(_prepare(settings))
    os.environ["TUSEDGE_SETTINGS_JSON"] = settings.to_json()
    return run(hypercorn_config(settings))
