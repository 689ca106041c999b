"""tusedge.client.boundaries: part boundaries on multiples of the server's alignment unit, as even as they can be."""

from __future__ import annotations

import itertools
import random

import pytest

from tusedge.client.boundaries import DEFAULT_ALIGNMENT, parse_alignment, split

MIB = 1024 * 1024


@pytest.mark.parametrize(
    ("size", "count", "unit"),
    [(256 * MIB + 12_345, 4, 4 * MIB), (1 << 30, 6, 4 * MIB), (2 << 30, 8, MIB), (10 * MIB + 1, 3, MIB)],
)
def test_every_part_but_the_last_is_a_whole_number_of_units(size: int, count: int, unit: int) -> None:
    ranges = split(size, count, unit)
    assert len(ranges) == count
    assert ranges[0][0] == 0 and sum(n for _, n in ranges) == size
    assert all(start + n == nxt for (start, n), (nxt, _) in itertools.pairwise(ranges))
    assert all(n % unit == 0 for _, n in ranges[:-1])
    lengths = [n for _, n in ranges]
    assert max(lengths) - min(lengths) <= unit  # as even as whole units allow


def test_parts_are_balanced_within_one_unit_for_random_sizes() -> None:
    rng = random.Random(15)
    for _ in range(500):
        unit = rng.choice([4096, MIB, 4 * MIB])
        size, count = rng.randrange(0, 50 * unit), rng.randrange(1, 12)
        ranges = split(size, count, unit)
        assert sum(n for _, n in ranges) == size
        assert all(n % unit == 0 and n > 0 for _, n in ranges[:-1])
        assert len(ranges) == max(1, min(count, size // unit))


def test_a_file_with_fewer_units_than_parts_gets_fewer_parts() -> None:
    assert split(5 * MIB, 8, 4 * MIB) == [(0, 5 * MIB)]
    assert split(9 * MIB, 8, 4 * MIB) == [(0, 4 * MIB), (4 * MIB, 5 * MIB)]
    assert split(100, 4, MIB) == [(0, 100)]
    assert split(0, 4, MIB) == [(0, 0)]


@pytest.mark.parametrize(
    ("header", "unit"),
    [
        ("4194304", 4 * MIB),
        (None, DEFAULT_ALIGNMENT),
        ("0", DEFAULT_ALIGNMENT),
        ("-1", DEFAULT_ALIGNMENT),
        ("4MiB", DEFAULT_ALIGNMENT),
        (str(1 << 40), DEFAULT_ALIGNMENT),
    ],
)
def test_the_unit_comes_from_the_servers_header_or_defaults_to_1_mib(header: str | None, unit: int) -> None:
    assert parse_alignment(header) == unit
