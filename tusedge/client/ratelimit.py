"""A bandwidth cap shared by all PATCH bodies of one upload: a token bucket that may go into debt.

``take(n)`` spends n bytes at once and, when the bucket is in debt, sleeps until the debt is paid. Parts
that send concurrently therefore queue behind each other and the total rate stays at ``rate`` bytes per
second; ``burst`` bounds how much unused allowance can be saved up.
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

    async def take(self, n: int) -> None:
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
        self._last = now
        self._tokens -= n
        if self._tokens < 0:
            await self._sleep(-self._tokens / self.rate)
