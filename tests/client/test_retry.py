"""The client's retry policy: what is retried, and the backoff's bounds."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable, Iterator

import httpx
import pytest

from tusedge.client.errors import GaveUp, TusClientError
from tusedge.client.retry import Attempts, RetryPolicy, is_retryable_status


@pytest.mark.parametrize("status", [409, 423, 429, 460, 500, 502, 503, 504, 507])
def test_transient_statuses_are_retried(status: int) -> None:
    assert is_retryable_status(status)


@pytest.mark.parametrize("status", [400, 403, 404, 410, 412, 413, 415])
def test_client_errors_that_cannot_succeed_stop_at_once(status: int) -> None:
    assert not is_retryable_status(status)


def test_backoff_grows_exponentially_within_full_jitter_bounds() -> None:
    policy = RetryPolicy(base_delay_s=1, max_delay_s=1000, total_budget_s=10_000, rng=random.Random(7))
    for attempt in range(8):
        delays = [policy.delay(attempt, 0) for _ in range(200)]
        assert all(d is not None and 0 <= d <= 2**attempt for d in delays)
        assert max(d for d in delays if d is not None) > 2**attempt * 0.8  # the jitter spans the range


def test_backoff_is_capped_by_max_delay() -> None:
    policy = RetryPolicy(base_delay_s=1, max_delay_s=5, max_attempts=50, total_budget_s=10_000)
    assert all((policy.delay(30, 0) or 0) <= 5 for _ in range(100))


def test_gives_up_after_max_attempts() -> None:
    policy = RetryPolicy(max_attempts=3)
    assert policy.delay(2, 0) is not None
    assert policy.delay(3, 0) is None


def test_gives_up_when_the_time_budget_is_spent_and_never_waits_past_it() -> None:
    policy = RetryPolicy(base_delay_s=100, max_delay_s=100, total_budget_s=60)
    assert policy.delay(0, 60) is None
    assert all((policy.delay(5, 59.5) or 0) <= 0.5 for _ in range(100))


def test_negative_limits_are_refused() -> None:
    with pytest.raises(ValueError):
        RetryPolicy(max_attempts=-1)


def scripted(answers: list[Exception | str]) -> Callable[[], Awaitable[str]]:
    """A request that raises or returns the next of ``answers`` each time it is called."""
    remaining: Iterator[Exception | str] = iter(answers)

    async def request() -> str:
        item = next(remaining)
        if isinstance(item, Exception):
            raise item
        return item

    return request


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def test_attempts_retry_transient_failures_then_give_up_naming_the_last() -> None:
    t = FakeTime()
    attempts = Attempts(RetryPolicy(max_attempts=3, base_delay_s=1, rng=random.Random(1)), clock=t.clock, sleep=t.sleep)
    calls = 0

    async def always_503() -> None:
        nonlocal calls
        calls += 1
        raise TusClientError("PATCH", "u", 503, "busy")

    with pytest.raises(GaveUp, match=r"gave up after 3 retries.*503 busy") as caught:
        asyncio.run(attempts.run(always_503))
    assert calls == 4 and len(t.sleeps) == 3 and attempts.retries == 3
    assert isinstance(caught.value.__cause__, TusClientError)


def test_attempts_stop_at_once_on_a_client_error_that_cannot_succeed() -> None:
    t = FakeTime()
    attempts = Attempts(RetryPolicy(), clock=t.clock, sleep=t.sleep)

    async def too_large() -> None:
        raise TusClientError("POST", "u", 413, "too large")

    with pytest.raises(TusClientError, match="413"):
        asyncio.run(attempts.run(too_large))
    assert t.sleeps == []


def test_a_success_gives_the_next_failures_a_fresh_budget() -> None:
    t = FakeTime()
    attempts = Attempts(RetryPolicy(max_attempts=1, base_delay_s=0.1), clock=t.clock, sleep=t.sleep)
    flaky = scripted([httpx.ConnectError("x"), "ok", httpx.ConnectError("y"), "ok again"])
    assert asyncio.run(attempts.run(flaky)) == "ok"
    assert asyncio.run(attempts.run(flaky)) == "ok again"
    assert attempts.retries == 2


def test_a_retry_after_from_the_server_is_waited_for_within_the_policys_bounds() -> None:
    t = FakeTime()
    attempts = Attempts(RetryPolicy(base_delay_s=0.01, max_delay_s=10), clock=t.clock, sleep=t.sleep)
    limited = scripted([TusClientError("HEAD", "u", 429, "slow down", retry_after=3),
                        TusClientError("HEAD", "u", 503, "busy", retry_after=3600), "ok"])  # fmt: skip
    assert asyncio.run(attempts.run(limited)) == "ok"
    assert t.sleeps[0] >= 3 and t.sleeps[1] == 10  # as asked; an hour is capped at max_delay_s
