"""Retries: which failures are worth another try (``is_retryable_status``), how long to wait before it
(``RetryPolicy``, pure: no clock, no I/O), and ``Attempts``, which applies a policy to a sequence of
requests.

Exponential backoff with full jitter (delay drawn uniformly from 0 up to ``base * 2**attempt``, capped),
bounded both by a number of attempts and by a total time budget.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

import httpx

from tusedge.client.errors import GaveUp, TusClientError

# Statuses after which the upload can go on: the server was briefly unable (5xx), another request
# held the upload (423), our offset was stale (409: HEAD again and continue from the server's), or the
# bytes were damaged on the way (460 Checksum Mismatch: the server kept nothing of that PATCH).
RETRY_STATUSES = frozenset({409, 423, 429, 460, 500, 502, 503, 504})

# Failures that may be transient: no answer at all, or an answer with one of the statuses above.
RETRYABLE = (httpx.TransportError, TusClientError)

T = TypeVar("T")


def is_retryable_status(status: int) -> bool:
    """A 4xx other than 409/423/429/460 cannot succeed by trying again (bad request, too large, gone...)."""
    return status in RETRY_STATUSES or status >= 500


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 10
    """Retries after the first try, at most (counted since the last success)."""
    base_delay_s: float = 0.5
    max_delay_s: float = 30.0
    total_budget_s: float = 600.0
    """Give up once this much time has gone by since the first failure (counted since the last success)."""
    rng: random.Random = field(default_factory=random.Random, compare=False)

    def __post_init__(self) -> None:
        if self.max_attempts < 0 or self.base_delay_s < 0 or self.max_delay_s < 0 or self.total_budget_s < 0:
            raise ValueError("retry limits must not be negative")

    def delay(self, attempt: int, elapsed_s: float) -> float | None:
        """Seconds to wait before retry number ``attempt`` (0-based) when ``elapsed_s`` have gone by since
        the first failure; None when the policy gives up."""
        if attempt >= self.max_attempts or elapsed_s >= self.total_budget_s:
            return None
        ceiling = min(self.max_delay_s, self.base_delay_s * 2**attempt)
        return min(self.rng.uniform(0, ceiling), max(0.0, self.total_budget_s - elapsed_s))


class Attempts:
    """The retry budget of one sequence of requests (one part's HEADs and PATCHes): failures since the
    last success count against the policy; a success starts the count again."""

    def __init__(
        self,
        policy: RetryPolicy,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.policy = policy
        self.retries = 0
        """Retries made in all (never reset)."""
        self._clock = clock
        self._sleep = sleep
        self._attempt = 0
        self._first_failure: float | None = None

    def succeeded(self) -> None:
        self._attempt, self._first_failure = 0, None

    async def failed(self, exc: Exception) -> None:
        """Wait before the next try; or raise ``exc`` when trying again cannot succeed, GaveUp when the
        policy's budget is spent."""
        if isinstance(exc, TusClientError) and not is_retryable_status(exc.status):
            raise exc
        now = self._clock()
        if self._first_failure is None:
            self._first_failure = now
        elapsed = now - self._first_failure
        delay = self.policy.delay(self._attempt, elapsed)
        if delay is None:
            raise GaveUp(
                f"gave up after {self._attempt} retries in {elapsed:.0f} s: {exc!s} ({type(exc).__name__})"
            ) from exc
        if isinstance(exc, TusClientError) and exc.retry_after is not None:
            # The server said when (429, 503): no sooner, but not past the policy's own bounds either.
            delay = max(delay, min(exc.retry_after, self.policy.max_delay_s))
        self._attempt += 1
        self.retries += 1
        await self._sleep(delay)

    async def run(self, request: Callable[[], Awaitable[T]]) -> T:
        """``request()`` until it succeeds, retrying transient failures."""
        while True:
            try:
                result = await request()
            except RETRYABLE as exc:
                await self.failed(exc)
                continue
            self.succeeded()
            return result
