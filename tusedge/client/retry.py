"""Retry policy of the client: which failures are worth another try, and how long to wait before it.

Pure: no clock, no I/O. Exponential backoff with full jitter (delay drawn uniformly from 0 up to
``base * 2**attempt``, capped), bounded both by a number of attempts and by a total time budget.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

# Statuses after which the upload can go on: the server was briefly unable (5xx), another request
# held the upload (423), or our offset was stale (409: HEAD again and continue from the server's).
RETRY_STATUSES = frozenset({409, 423, 429, 500, 502, 503, 504})


def is_retryable_status(status: int) -> bool:
    """A 4xx other than 409/423/429 cannot succeed by trying again (bad request, too large, gone...)."""
    return status in RETRY_STATUSES or status >= 500


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 10
    """Retries after the first try, at most."""
    base_delay_s: float = 0.5
    max_delay_s: float = 30.0
    total_budget_s: float = 600.0
    """Give up once this much time has gone by since the first failure."""
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
