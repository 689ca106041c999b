"""Per-client limits, keyed by the client's address (the proxy's X-Forwarded-For with --trust-proxy): a
request rate (429 with Retry-After past it) and an upload bandwidth shared by all of the client's request
bodies (read no faster than the cap, so TCP slows the client down; nothing is refused).

Buckets live in each server process: with --workers N or several nodes a client gets up to N times the
limits. The tables forget the least recently seen clients past ``MAX_CLIENTS``.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable

from starlette.requests import Request

from tusedge.config import Settings
from tusedge.errors import TooManyRequests
from tusedge.tokenbucket import TokenBucket

MAX_CLIENTS = 100_000
REQUEST_BURST_S = 5.0  # a client may spend this many seconds' worth of requests at once


class _Buckets:
    def __init__(self, make: Callable[[], TokenBucket]) -> None:
        self._make = make
        self._table: OrderedDict[str, TokenBucket] = OrderedDict()

    def get(self, client: str) -> TokenBucket:
        bucket = self._table.get(client)
        if bucket is None:
            bucket = self._table[client] = self._make()
            if len(self._table) > MAX_CLIENTS:
                self._table.popitem(last=False)
        else:
            self._table.move_to_end(client)
        return bucket


class ClientLimits:
    def __init__(self, settings: Settings, clock: Callable[[], float] = time.monotonic) -> None:
        rate, bandwidth = settings.client_requests_per_s, settings.client_bandwidth_bytes
        self._requests = (
            _Buckets(lambda: TokenBucket(rate, burst=max(1.0, rate * REQUEST_BURST_S), clock=clock)) if rate else None
        )
        self._bytes = _Buckets(lambda: TokenBucket(bandwidth, clock=clock)) if bandwidth else None

    @staticmethod
    def client(request: Request) -> str:
        return request.client.host if request.client else "?"

    def check_rate(self, request: Request) -> None:
        """Count this request against its client's rate; TooManyRequests when over it."""
        if self._requests is None:
            return
        wait = self._requests.get(self.client(request)).try_take(1)
        if wait > 0:
            seconds = max(1, math.ceil(wait))
            raise TooManyRequests(f"too many requests from this client; retry in {seconds} s",
                                  headers={"Retry-After": str(seconds)})  # fmt: skip

    def throttle(self, request: Request, body: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        """The request body, read no faster than its client's bandwidth allows."""
        if self._bytes is None:
            return body
        bucket = self._bytes.get(self.client(request))

        async def paced() -> AsyncIterator[bytes]:
            async for chunk in body:
                await bucket.take(len(chunk))
                yield chunk

        return paced()
