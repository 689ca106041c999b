"""The minimum body rate (``--min-body-rate`` bytes/s over ``--min-body-rate-window-s``): a request body that
arrives slower is cut, what arrived of it is kept as after a disconnect, and the client gets 408.

The clock is the time the app spends waiting in ``receive()`` for the client, not wall time: while the
server holds the body up itself (its own ``--client-bandwidth-bytes`` cap, a disk write, waiting for the
upload's lock) nothing is counted against the client. ASGI-level, so it holds for HTTP/1.1, HTTP/2 and
HTTP/3 alike. After the body has ended, ``receive()`` is passed through untouched (a response waiting for
``http.disconnect`` waits as long as it likes).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tusedge.errors import RequestTimeout

SAMPLES_PER_WINDOW = 32  # the meter remembers at most this many points per window (bounded memory)


class BodyMeter:
    """Bytes of one body against the time spent waiting for them."""

    def __init__(self, rate: float, window_s: float) -> None:
        self.rate = rate
        self.window_s = window_s
        self.waited = 0.0  # seconds spent in receive()
        self.received = 0
        self._samples: deque[tuple[float, int]] = deque([(0.0, 0)])  # (waited, received) at that point

    def add(self, waited_s: float, data: int) -> None:
        self.waited += waited_s
        self.received += data
        if self.waited - self._samples[-1][0] >= self.window_s / SAMPLES_PER_WINDOW:
            self._samples.append((self.waited, self.received))
        horizon = self.waited - self.window_s
        while len(self._samples) > 1 and self._samples[1][0] <= horizon:
            self._samples.popleft()

    def time_left(self) -> float:
        """Seconds of waiting left before the body falls below the rate over a window, if no byte comes."""
        floor = self.received - self.rate * self.window_s  # a window must start above this many bytes
        fails_at = self.window_s
        for waited, received in self._samples:
            if received > floor:
                fails_at = max(fails_at, waited + self.window_s)
                break
        else:
            fails_at = max(fails_at, self.waited + self.window_s)
        return fails_at - self.waited

    def error(self) -> RequestTimeout:
        return RequestTimeout(
            f"the request body arrived slower than {self.rate:g} bytes/s over {self.window_s:g} s"
            f" (--min-body-rate); the {self.received} bytes that arrived are kept, HEAD gives the offset"
        )


class MinimumBodyRate:
    """ASGI middleware: each http request's ``receive()`` raises :class:`RequestTimeout` once its body falls
    below the rate (the body pump keeps what arrived, as after a disconnect)."""

    def __init__(self, app: ASGIApp, rate: float, window_s: float, clock: Callable[[], float] = time.monotonic):
        self.app = app
        self.rate = rate
        self.window_s = window_s
        self.clock = clock

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self.rate <= 0:
            await self.app(scope, receive, send)
            return
        meter = BodyMeter(self.rate, self.window_s)
        ended = False

        async def metered() -> Message:
            nonlocal ended
            if ended:
                return await receive()
            left = meter.time_left()
            if left <= 0:
                ended = True
                raise meter.error()
            start = self.clock()
            try:
                async with asyncio.timeout(left):  # a third of wait_for's cost per chunk (no task)
                    message = await receive()
            except TimeoutError:
                ended = True
                meter.add(self.clock() - start, 0)
                raise meter.error() from None
            body = message.get("body", b"") if message["type"] == "http.request" else b""
            meter.add(self.clock() - start, len(body))
            if message["type"] != "http.request" or not message.get("more_body", False):
                ended = True
            return message

        await self.app(scope, metered, send)
