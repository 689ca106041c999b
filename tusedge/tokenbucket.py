"""Token buckets: the client's bandwidth cap (all parts of one upload share one), and the server's
per-client limits on request rate and upload bandwidth.

``take(n)`` spends n units at once and, when the bucket is in debt, sleeps until the debt is paid: callers
that spend concurrently queue behind each other and the total rate stays at ``rate`` per second.
``try_take(n)`` never waits: it takes n when the bucket holds them, else reports how long until it would.
``burst`` bounds how much unused allowance can be saved up.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable


class TokenBucket:
    def __init__(
        self,
        rate: float,
        burst: float | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if rate <= 0:
            raise ValueError("the rate limit must be positive")
        self.rate = float(rate)
        self.burst = float(burst) if burst is not None else self.rate / 4
        self._clock = clock
        self._sleep = sleep
        self._tokens = self.burst
        self._last = clock()

    def piece_size(self, largest: int) -> int:
        """A read size that keeps the flow smooth at this rate: about 1/16 s of it, within [16 KiB, largest]."""
        return max(16 * 1024, min(largest, int(self.rate / 16)))

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
        self._last = now

    @property
    def idle(self) -> bool:
        """Full again: nothing spent for long enough that forgetting this bucket changes nothing."""
        self._refill()
        return self._tokens >= self.burst

    def try_take(self, n: float = 1) -> float:
        """Take ``n`` if the bucket holds them and return 0; else take nothing and return the seconds to wait."""
        self._refill()
        if self._tokens >= n:
            self._tokens -= n
            return 0.0
        return (n - self._tokens) / self.rate

    async def take(self, n: int) -> None:
        self._refill()
        self._tokens -= n
        if self._tokens < 0:
            await self._sleep(-self._tokens / self.rate)
