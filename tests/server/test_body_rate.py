"""The minimum body rate's meter: time counts only while waiting for the client, over a sliding window."""

from __future__ import annotations

from tusedge.server.bodyrate import SAMPLES_PER_WINDOW, BodyMeter


def test_a_body_that_brings_nothing_fails_after_one_window() -> None:
    meter = BodyMeter(rate=1000, window_s=10)
    assert meter.time_left() == 10
    meter.add(4, 0)
    assert meter.time_left() == 6


def test_a_fast_start_then_a_trickle_fails_a_window_after_the_fast_part() -> None:
    meter = BodyMeter(rate=1000, window_s=10)
    meter.add(1, 1_000_000)  # a megabyte in the first second
    for _ in range(20):
        meter.add(1, 1)  # then a byte a second
    assert meter.time_left() <= 0


def test_a_steady_body_at_the_rate_never_fails() -> None:
    meter = BodyMeter(rate=1000, window_s=10)
    for _ in range(1000):
        meter.add(0.1, 110)
        assert meter.time_left() > 0


def test_time_the_server_holds_the_body_up_is_not_counted() -> None:
    """Chunks that were waiting when asked for cost no time: a body the server itself read slowly (its own
    bandwidth cap, a slow disk) is never cut."""
    meter = BodyMeter(rate=1000, window_s=10)
    for _ in range(10_000):
        meter.add(0.0, 1)
    assert meter.time_left() == 10


def test_the_meter_keeps_a_bounded_number_of_points() -> None:
    meter = BodyMeter(rate=1000, window_s=10)
    for _ in range(100_000):
        meter.add(0.001, 100)
    assert len(meter._samples) <= SAMPLES_PER_WINDOW + 2
