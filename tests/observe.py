"""Waiting on what a server shows, never on the clock: a condition polled until it holds (or a clear failure
after a deadline), and the server's Prometheus metrics (tests/metrics_samples.py)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

from metrics_samples import samples

T = TypeVar("T")


def wait_for(probe: Callable[[], T | None], what: str, timeout_s: float = 20.0, interval_s: float = 0.02) -> T:
    """Call ``probe`` until it returns something other than None or False; return that. Fails after
    ``timeout_s`` naming ``what`` was awaited. The deadline is generous: it only bounds a test that fails."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = probe()
        if value is not None and value is not False:
            return value
        assert time.monotonic() < deadline, f"after {timeout_s} s still waiting for {what}"
        time.sleep(interval_s)


def metric(origin: str, name: str, **labels: str) -> float:
    """One sample's value (0 when the server has not reported it yet)."""
    return samples(origin).get((name, tuple(sorted(labels.items()))), 0.0)


def wait_for_metric(origin: str, name: str, at_least: float, timeout_s: float = 20.0, **labels: str) -> float:
    def probe() -> float | None:
        value = metric(origin, name, **labels)
        return value if value >= at_least else None

    return wait_for(probe, f"{name}{labels or ''} >= {at_least}", timeout_s)


def wait_body_bytes_read(origin: str, at_least: float, timeout_s: float = 20.0) -> float:
    """Until the server has read ``at_least`` request body bytes since it started (``tusedge_body_bytes_read``):
    a PATCH whose body is being read holds its upload's lock, and bytes read are bytes the server has."""
    return wait_for_metric(origin, "tusedge_body_bytes_read_total", at_least, timeout_s)
