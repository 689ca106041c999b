"""The tus 1.0.0 protocol with no I/O: header grammar, metadata, and the pure decisions of the spec.

Nothing in this package imports starlette, asyncio, sqlalchemy or touches the disk; it turns strings into
frozen values and raises :mod:`tusedge.errors` on bad input. Server and client share it.
"""

from __future__ import annotations
