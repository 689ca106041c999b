"""Graceful drain: what a server process does between SIGTERM and its exit.

1. ``begin()`` (SIGTERM): the node stops taking uploads. Every POST and every PATCH that starts from now on
   is answered 503 with ``Retry-After`` (``/readyz`` fails too, so a load balancer stops sending), while
   HEAD, GET, OPTIONS and DELETE are still served: a client can learn its offset and come back.
2. Request bodies already streaming (PATCH, creation-with-upload) run on for up to ``timeout_s``.
3. At the deadline the ones still running are cut: their next (or current) ``receive()`` answers
   ``http.disconnect``, exactly what a client that went away produces, so the service writes, syncs and
   commits what arrived (docs/durability.md) and the request is answered 503. Nothing accepted is lost,
   and no offset runs ahead of the disk.
4. ``settled()`` returns once no body is in flight and the other requests (a download, a HEAD) are done or
   the deadline has passed; the caller then lets the server exit.

A body waiting for its next chunk at the deadline is woken by cancelling its task inside our ``receive``
wrapper, where the cancellation is turned into the disconnect message at once (and ``uncancel``-ed), so it
never reaches the code above. Cost while not draining: a set insert and two attribute stores per message.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tusedge.errors import ShuttingDown
from tusedge.server.middleware import HttpMiddleware
from tusedge.server.responses import answer_error, error_text

log = logging.getLogger("tusedge")

RETRY_AFTER_S = 5  # what a refused client is told to wait: about a restart's time
BODY_METHODS = frozenset({"POST", "PATCH"})
_DISCONNECT: Message = {"type": "http.disconnect"}


def shutting_down() -> ShuttingDown:
    return ShuttingDown(headers={"Retry-After": str(RETRY_AFTER_S)})


class _Body:
    """One request whose body may be streaming: the task reading it, and whether it is waiting right now."""

    __slots__ = ("cancelled", "cut", "read", "task", "waiting")

    def __init__(self) -> None:
        self.cut = False  # the drain deadline ended this body
        self.read = False  # the whole body arrived (or the client left): nothing to cut
        self.waiting = False  # inside receive() right now
        self.cancelled = False  # we cancelled the task to wake it
        self.task: asyncio.Task[Any] | None = None

    def wrap(self, receive: Receive) -> Receive:
        async def cut_receive() -> Message:
            if self.cut:
                return _DISCONNECT
            self.task = asyncio.current_task()
            self.waiting = True
            try:
                message = await receive()
            except asyncio.CancelledError:
                # Ours (see interrupt) unless someone else cancelled this task as well.
                if self.cancelled and self.task is not None and self.task.uncancel() == 0:
                    self.cancelled = False
                    return _DISCONNECT
                raise
            finally:
                self.waiting = False
            if message["type"] != "http.request" or not message.get("more_body", False):
                self.read = True
            return message

        return cut_receive

    def interrupt(self) -> None:
        if self.read:
            return
        self.cut = True
        if self.waiting and self.task is not None:
            self.cancelled = True
            self.task.cancel()


class Drain:
    """The drain state of one server process (see the module's text)."""

    def __init__(self, timeout_s: float) -> None:
        self.timeout_s = timeout_s
        self.draining = False
        self._bodies: set[_Body] = set()
        self._others = 0  # requests without a body in flight (downloads, HEAD, ...)
        self._changed: asyncio.Event | None = None
        self._deadline: asyncio.TimerHandle | None = None
        self._past_deadline = False

    def begin(self) -> None:
        """Stop taking uploads; cut the bodies still streaming after ``timeout_s``. Idempotent."""
        if self.draining:
            return
        self.draining = True
        log.info("draining: new uploads are refused; request bodies in flight (%d) get %g s to finish",
                 len(self._bodies), self.timeout_s)  # fmt: skip
        self._deadline = asyncio.get_running_loop().call_later(self.timeout_s, self.cut)
        self._notify()

    def cut(self) -> None:
        """End every body still streaming now (their requests commit what arrived)."""
        if self._bodies:
            log.warning("drain timeout: cutting the request bodies still in flight (%d)", len(self._bodies))
        for body in list(self._bodies):
            body.interrupt()
        self._past_deadline = True
        self._notify()

    async def settled(self) -> None:
        """Once draining: until no request body is in flight, and no other request either (or the deadline
        has passed: Hypercorn's own graceful timeout then ends downloads, which resume with Range)."""
        while not (self.draining and not self._bodies and (not self._others or self._past_deadline)):
            self._changed = self._changed or asyncio.Event()
            self._changed.clear()
            await self._changed.wait()
        if self._deadline is not None:
            self._deadline.cancel()

    def _notify(self) -> None:
        if self._changed is not None:
            self._changed.set()

    def _enter(self) -> _Body:
        body = _Body()
        self._bodies.add(body)
        return body

    def _leave(self, body: _Body) -> None:
        self._bodies.discard(body)
        if self.draining:
            self._notify()

    def _other_started(self) -> None:
        self._others += 1

    def _other_done(self) -> None:
        self._others -= 1
        if self.draining:
            self._notify()


def drain_on_sigterm(drain: Drain) -> None:
    """In a server process of ``tusedge serve``: SIGTERM (or SIGHUP) begins the drain, and once it has settled we stop
    the way Ctrl-C does, by raising SIGINT, whose handler Hypercorn installs in every process it serves
    without a shutdown event (one process, and each worker of :mod:`tusedge.server.workers`). SIGINT itself
    stays the quick stop. Called from the app's lifespan, after Hypercorn's handlers are in place."""
    loop = asyncio.get_running_loop()
    stopping: list[asyncio.Task[None]] = []

    async def stop_when_settled() -> None:
        await drain.settled()
        log.info("drained; stopping")
        signal.raise_signal(signal.SIGINT)

    def on_sigterm() -> None:
        drain.begin()
        if not stopping:
            stopping.append(loop.create_task(stop_when_settled()))

    loop.add_signal_handler(signal.SIGTERM, on_sigterm)
    loop.add_signal_handler(signal.SIGHUP, on_sigterm)  # a hangup stops it the same way, never abruptly


class DrainGate(HttpMiddleware):
    """ASGI middleware: refuses POST and PATCH while draining, tracks the bodies in flight, and answers a
    request whose body was cut with 503 and ``Retry-After`` (whatever its handler made of the short body)."""

    def __init__(self, app: ASGIApp, drain: Drain) -> None:
        super().__init__(app)
        self.drain = drain

    async def http(self, scope: Scope, receive: Receive, send: Send) -> None:
        drain = self.drain
        if scope["method"] not in BODY_METHODS:
            drain._other_started()
            try:
                await self.app(scope, receive, send)
            finally:
                drain._other_done()
            return
        if drain.draining:
            await answer_error(shutting_down(), scope, receive, send)
            return
        body = drain._enter()
        try:
            await self.app(scope, body.wrap(receive), _answer_cut(body, send))
        finally:
            drain._leave(body)


def _answer_cut(body: _Body, send: Send) -> Send:
    """``send`` for a request whose body may be cut: once it was, the response becomes the 503."""
    replaced = False

    async def send_or_replace(message: Message) -> None:
        nonlocal replaced
        if not body.cut:
            await send(message)
            return
        if message["type"] == "http.response.start":
            error = shutting_down()
            text = error_text(error).encode()
            kept = [(k, v) for k, v in message.get("headers", []) if k.lower() not in (b"content-length",
                                                                                       b"content-type")]  # fmt: skip
            headers = [*kept, (b"retry-after", str(RETRY_AFTER_S).encode()), (b"content-type", b"text/plain"),
                       (b"content-length", str(len(text)).encode())]  # fmt: skip
            await send({"type": "http.response.start", "status": error.status, "headers": headers})
            await send({"type": "http.response.body", "body": text, "more_body": False})
            replaced = True
        elif not replaced:
            await send(message)

    return send_or_replace
