"""How often the client asks for a verdict while the server finishes a merged or verified upload."""

from __future__ import annotations

import pytest

from tusedge.client.uploader import poll_delay


@pytest.mark.parametrize("waited", [0.0, 0.5, 1.5, 3.0, 10.0, 19.0])
def test_verdict_polled_within_a_tenth_of_the_wait_so_far(waited: float) -> None:
    """The verdict is seen at most ~10 % (plus 50 ms) after it is there, and no HEAD comes faster than 50 ms."""
    assert 0.05 <= poll_delay(waited) <= 0.05 + waited / 10


def test_verdict_polling_settles_at_two_seconds_for_long_merges() -> None:
    assert poll_delay(600.0) == 2.0
