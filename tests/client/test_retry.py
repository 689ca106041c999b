"""The client's retry policy: what is retried, and the backoff's bounds."""

from __future__ import annotations

import random

import pytest

from tusedge.client.retry import RetryPolicy, is_retryable_status


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
