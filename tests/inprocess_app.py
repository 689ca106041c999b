"""The in-process test layer (tests/inprocess): the whole app (middleware, routes, service, real SQLite,
real files, real flock locks) under ``httpx.ASGITransport`` in the test's own event loop, its lifespan run
as a server would. No subprocess and no socket: a service rule is checked here in milliseconds, end to end
through HTTP."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import httpx
from starlette.applications import Starlette

from tusedge.config import Settings
from tusedge.server.app import create_app
from tusedge.server.components import Components
from tusedge.server.service import TusService

TUS = {"Tus-Resumable": "1.0.0"}


class InProcess:
    def __init__(self, app: Starlette, client: httpx.AsyncClient) -> None:
        self.app = app
        self.client = client
        self.components: Components = app.state.components
        self.service: TusService = app.state.service

    async def create(self, length: int | None, **headers: str) -> str:
        """POST a new upload (``length`` None: deferred); its path."""
        sizing = {"Upload-Length": str(length)} if length is not None else {"Upload-Defer-Length": "1"}
        answer = await self.client.post("/files/", headers={**TUS, **sizing, **headers})
        assert answer.status_code == 201, answer.text
        return httpx.URL(answer.headers["Location"]).path

    async def patch(self, path: str, offset: int, body: Any, **headers: str) -> httpx.Response:
        if isinstance(body, bytes):
            headers.setdefault("Content-Length", str(len(body)))
        sent = {**TUS, "Upload-Offset": str(offset), "Content-Type": "application/offset+octet-stream", **headers}
        return await self.client.patch(path, headers=sent, content=body)

    async def head(self, path: str) -> httpx.Response:
        return await self.client.head(path, headers=TUS)

    def files(self) -> list[str]:
        return sorted(p.name for p in self.components.settings.uploads_dir.iterdir())


Factory = Callable[..., AbstractAsyncContextManager[InProcess]]


@asynccontextmanager
async def inprocess(settings: Settings) -> AsyncIterator[InProcess]:
    """The app on ``settings``, its lifespan started, with a client; all stopped when the block ends."""
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://tusedge.test") as client:
            yield InProcess(app, client)


async def until(condition: Callable[[], bool], what: str, timeout_s: float = 10.0) -> None:
    """Wait for observable state (``condition()`` true), polling the event loop; fail after timeout_s."""
    try:
        async with asyncio.timeout(timeout_s):
            while not condition():
                await asyncio.sleep(0.005)
    except TimeoutError:
        raise AssertionError(f"not within {timeout_s} s: {what}") from None


async def eventually(check: Callable[[], Awaitable[bool]], what: str, timeout_s: float = 10.0) -> None:
    """:func:`until` for state that takes an await to read (a row in the state database)."""
    try:
        async with asyncio.timeout(timeout_s):
            while not await check():
                await asyncio.sleep(0.005)
    except TimeoutError:
        raise AssertionError(f"not within {timeout_s} s: {what}") from None


def sample(tus: InProcess, name: str, labels: dict[str, str] | None = None) -> float:
    """A metric's value in this app's registry (0 where it has none yet)."""
    value = tus.components.metrics.registry.get_sample_value(name, labels)
    return 0.0 if value is None else value
