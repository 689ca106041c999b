"""``create_app(settings)``: the Starlette application. It builds the components once (engine, store,
locker, hooks, metrics: tusedge.server.components) and hands them to the service and the endpoints; the
lifespan sets them up and starts the reaper and hook deliveries. Nothing lives in module globals."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncIterator
from typing import Any, cast

from hypercorn.middleware import ProxyFixMiddleware
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.routing import Route
from starlette.types import ASGIApp

from tusedge.config import Settings
from tusedge.errors import TusError
from tusedge.protocol.constants import EXPOSED_HEADERS
from tusedge.server.access_log import access_log_middleware
from tusedge.server.bodyrate import MinimumBodyRate
from tusedge.server.components import build_components, started
from tusedge.server.connections import STATE_KEY, ClientCaps, ConnectionTable
from tusedge.server.drain import Drain, DrainGate, drain_on_sigterm
from tusedge.server.health import Health, ping_engine
from tusedge.server.metrics import RequestMetrics
from tusedge.server.middleware import (
    FrontBodyCheck,
    MethodOverride,
    RequestFraming,
    RequestHeaderCheck,
    TusResumableHeader,
)
from tusedge.server.reaper import run_reaper
from tusedge.server.responses import handle_translated, handle_tus_error, handle_unexpected
from tusedge.server.routes import TusEndpoints
from tusedge.server.service import TusService
from tusedge.server.ui import UploadPage
from tusedge.state.errors import STATE_ERRORS

log = logging.getLogger("tusedge")


def build_service(settings: Settings) -> TusService:
    """The service for ``settings``, wired to its components: the server's, and the admin commands'
    (``tusedge uploads``). Nothing is started: see :func:`running`."""
    return TusService(build_components(settings))


@contextlib.asynccontextmanager
async def running(service: TusService) -> AsyncIterator[TusService]:
    """The service's components set up for as long as the block runs, then all of it closed (finishing
    jobs still running in this process are cancelled first: they start again elsewhere or later)."""
    async with started(service.components):
        try:
            yield service
        finally:
            await service.finisher.close()


def create_app(settings: Settings, *, handle_signals: bool = False) -> Starlette:
    """``handle_signals``: SIGTERM drains (only in a server process of ``tusedge serve``, never in tests
    that run the app in their own process)."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    components = build_components(settings)
    service = TusService(components)
    engine, hooks, metrics = components.repository.engine, components.hooks, components.metrics
    endpoints = TusEndpoints(components, service)
    drain = Drain(settings.drain_timeout_s)
    connections = ConnectionTable(settings.client_max_connections, by_forwarded_address=settings.trust_proxy)
    health = Health(lambda: ping_engine(engine), settings.uploads_dir, settings.ready_min_free_bytes, drain)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, Any]]:
        async with running(service):
            await service.finisher.resume_pending()
            # The reaper also retries finishing jobs, so it runs even when uploads never expire.
            loop = asyncio.get_running_loop()
            background = [loop.create_task(run_reaper(components, service.finisher, settings.reaper_interval_s))]
            if hooks.delivers:
                background.append(loop.create_task(hooks.run_deliveries()))
            if handle_signals:
                drain_on_sigterm(drain)
            try:
                # The lifespan state reaches Hypercorn, whose connections register in the table.
                yield {STATE_KEY: connections}
            finally:
                for task in background:
                    task.cancel()
                for task in background:
                    with contextlib.suppress(asyncio.CancelledError):
                        await task

    # Outermost first. The access log sees every answer (CORS preflights and the drain's 503 included);
    # the drain gate is innermost, so its 503 gets CORS and Tus-Resumable headers and is counted in metrics.
    middleware = [
        *access_log_middleware(settings),
        Middleware(
            CORSMiddleware,
            allow_origins=list(settings.cors_origins),
            allow_methods=["GET", "HEAD", "POST", "PATCH", "DELETE", "OPTIONS"],
            allow_headers=["*"],
            expose_headers=list(EXPOSED_HEADERS),
            max_age=86400,
        ),
        Middleware(MethodOverride),
        Middleware(RequestMetrics, metrics=metrics),
        Middleware(TusResumableHeader),
        Middleware(ClientCaps, table=connections, max_uploads=settings.client_max_uploads),
        Middleware(RequestFraming),
        Middleware(RequestHeaderCheck),
        Middleware(MinimumBodyRate, rate=settings.min_body_rate, window_s=settings.min_body_rate_window_s),
        Middleware(DrainGate, drain=drain),
    ]
    routes = endpoints.routes() + health.routes()
    if settings.metrics:
        routes.append(Route("/metrics", metrics.endpoint, methods=["GET"]))
    if settings.ui:
        page = UploadPage(settings)
        page.warn_if_unbuilt()
        routes += page.routes()  # after the tus routes: a base path of "/" keeps its own methods
    app = Starlette(
        routes=routes,
        middleware=middleware,
        exception_handlers={
            TusError: handle_tus_error,
            **dict.fromkeys(STATE_ERRORS, handle_translated),
            ExceptionGroup: handle_translated,
            Exception: handle_unexpected,
        },
        lifespan=lifespan,
    )
    app.state.components = components
    app.state.service = service
    app.state.drain = drain
    return app


def app_from_environment() -> ASGIApp:
    """Entry point for Hypercorn workers: the parent process passes the settings in the environment."""
    text = os.environ.get("TUSEDGE_SETTINGS_JSON")
    settings = Settings.from_json(text) if text else Settings.from_env()
    configure_logging(settings.log_level)
    app: ASGIApp = create_app(settings, handle_signals=True)
    if settings.trust_proxy:
        # Behind a reverse proxy: take scheme and host from X-Forwarded-Proto/-Host (one trusted hop), so
        # Location headers name the URL the client used.
        # An HTTP/3 body the front passed on as empty is refused, not taken as an empty PATCH.
        app = cast(ASGIApp, ProxyFixMiddleware(cast(Any, FrontBodyCheck(app)), mode="legacy", trusted_hops=1))
    return app


def configure_logging(level: str) -> None:
    """Our own messages go to stderr in Hypercorn's format; Hypercorn keeps its own handler."""
    logger = logging.getLogger("tusedge")
    if not logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("[%(asctime)s] [%(process)d] [%(levelname)s] %(message)s"))
        logger.addHandler(handler)
    logger.setLevel(level.upper())
    logger.propagate = False
