"""Fixtures of the in-process layer (helpers: tests/inprocess_app.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from inprocess_app import Factory, InProcess, inprocess

from tusedge.config import Settings


@pytest.fixture
def inprocess_factory(tmp_path: Path) -> Factory:
    """``async with inprocess_factory(stale_lock_s=0.1) as tus:`` the app on those settings (in a fresh data
    folder below tmp_path), lifespan started; stopped when the block ends."""
    counter = iter(range(1000))

    def make(**overrides: Any) -> Any:
        return inprocess(Settings(data_dir=tmp_path / f"node{next(counter)}", **overrides))

    return make


@pytest.fixture
async def tus(inprocess_factory: Factory) -> AsyncIterator[InProcess]:
    """The app on its defaults."""
    async with inprocess_factory() as app:
        yield app
