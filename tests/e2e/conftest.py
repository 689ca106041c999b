"""Fixtures of the end-to-end tests (the server fixtures live in tests/conftest.py)."""

from __future__ import annotations

from js_harness import node_executable

__all__ = ["node_executable"]
