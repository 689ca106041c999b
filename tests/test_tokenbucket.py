"""The bandwidth cap: a token bucket shared by all parts, checked against a fake clock."""

from __future__ import annotations

import asyncio

import pytest

from tusedge.tokenbucket import TokenBucket


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds


def test_sustained_rate_equals_the_cap_after_the_burst() -> None:
    t = FakeTime()
    bucket = TokenBucket(1000, burst=250, clock=t.clock, sleep=t.sleep)

    async def send(total: int, piece: int) -> None:
        for _ in range(total // piece):
            await bucket.take(piece)

    asyncio.run(send(10_000, 100))
    assert t.now == pytest.approx((10_000 - 250) / 1000)


def test_concurrent_takers_share_one_rate() -> None:
    """Four parts sending at once get the cap between them, not four times it."""
    t = FakeTime()
    bucket = TokenBucket(1000, burst=0, clock=t.clock, sleep=t.sleep)

    async def part() -> None:
        for _ in range(10):
            await bucket.take(100)

    async def main() -> None:
        await asyncio.gather(*(part() for _ in range(4)))

    asyncio.run(main())
    assert t.now >= 4 * 10 * 100 / 1000 - 0.1 - 1e-9  # the last taker's wait ends at ~4 s


def test_unused_allowance_is_saved_only_up_to_the_burst() -> None:
    t = FakeTime()
    bucket = TokenBucket(1000, burst=100, clock=t.clock, sleep=t.sleep)
    t.now = 60.0  # a minute idle
    asyncio.run(bucket.take(1100))
    assert t.now == pytest.approx(61.0)


def test_piece_size_follows_the_rate_within_bounds() -> None:
    assert TokenBucket(1024).piece_size(1 << 20) == 16 * 1024
    assert TokenBucket(1 << 20).piece_size(1 << 20) == (1 << 20) // 16
    assert TokenBucket(1 << 40).piece_size(1 << 20) == 1 << 20


def test_rate_must_be_positive() -> None:
    with pytest.raises(ValueError):
        TokenBucket(0)


def test_try_take_never_waits_and_says_how_long_until_it_could() -> None:
    t = FakeTime()
    bucket = TokenBucket(2, burst=3, clock=t.clock, sleep=t.sleep)
    assert [bucket.try_take() for _ in range(3)] == [0, 0, 0]
    assert bucket.try_take() == pytest.approx(0.5)  # refused: nothing taken
    assert bucket.try_take() == pytest.approx(0.5)
    t.now += 0.5
    assert bucket.try_take() == 0
    assert not bucket.idle
    t.now += 10
    assert bucket.idle
