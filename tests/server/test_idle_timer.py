"""The keep-alive timer of an HTTP/1.1 connection (hypercorn_fixes.tcp ``tcp-idle-timer``): a loop timer per
idle period, not a task (with a ``wait_for`` task of its own) made and cancelled around every request; it
still closes an idle connection when ``keep_alive_timeout`` runs out, and at once when the server stops.
Hypercorn serves in this process, so the test can see its tasks."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from hypercorn.asyncio import serve
from hypercorn.config import Config

from tusedge.config import Settings
from tusedge.server import hypercorn_fixes

REQUEST = b"GET / HTTP/1.1\r\nHost: tusedge.test\r\n\r\n"


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            else:
                await send({"type": "lifespan.shutdown.complete"})
                return
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
    await send({"type": "http.response.body", "body": b"ok"})


@asynccontextmanager
async def server(keep_alive_s: float) -> AsyncIterator[tuple[int, asyncio.Task[None]]]:
    """Hypercorn with the fixes (but those TUSEDGE_HYPERCORN_FIXES_OFF names) serving ``app`` on a free port."""
    hypercorn_fixes.install(Settings.from_env().hypercorn_fixes_off)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()  # connections wait in the backlog until Hypercorn accepts them
    port = sock.getsockname()[1]
    config = Config()
    config.bind = [f"fd://{sock.detach()}"]  # Hypercorn's from now on
    config.keep_alive_timeout = keep_alive_s
    config.graceful_timeout = 30
    stop = asyncio.Event()
    task = asyncio.get_running_loop().create_task(serve(app, config, shutdown_trigger=stop.wait))  # type: ignore[arg-type]
    try:
        yield port, task
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)  # well within the graceful timeout: idle connections do not hold it


async def answered(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A connection that has had one request answered and is now idle."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(REQUEST)
    head = await reader.readuntil(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")
    assert await reader.readexactly(2) == b"ok"
    return reader, writer


def idle_timer_tasks() -> list[asyncio.Task[Any]]:
    names = {"TCPServer._idle_timeout", "EventWrapper.wait"}
    return [task for task in asyncio.all_tasks() if getattr(task.get_coro(), "__qualname__", "") in names]


async def test_an_idle_keep_alive_connection_waits_on_a_timer_not_a_task() -> None:
    async with server(keep_alive_s=0.5) as (port, _):
        reader, writer = await answered(port)
        for _ in range(3):  # more requests on the same connection
            writer.write(REQUEST)
            await reader.readuntil(b"\r\n\r\n")
            await reader.readexactly(2)
        assert idle_timer_tasks() == []
        # The timer still closes the idle connection once keep_alive_timeout has passed.
        assert await asyncio.wait_for(reader.read(), 10) == b""
        writer.close()


async def test_an_idle_connection_is_closed_at_once_when_the_server_stops() -> None:
    async with server(keep_alive_s=600) as (port, task):
        reader, writer = await answered(port)
    # The server has stopped well within its graceful timeout, and the idle connection with it.
    assert task.done()
    assert await asyncio.wait_for(reader.read(), 10) == b""
    writer.close()
