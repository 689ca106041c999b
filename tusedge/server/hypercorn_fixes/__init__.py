"""Fixes for defects of Hypercorn 0.18 (and the aioquic 1.7 it drives), applied in every server process
before the app is loaded (``serve.worker_app``).

Hypercorn has no settings or hooks for these, so we replace a few of its protocol methods. Every
replacement is one :class:`~tusedge.server.hypercorn_fixes.table.Patch` in ``PATCHES``: its target, why,
where upstream stands, a fingerprint of the original and the test that fails without it. :func:`install`
refuses to run on a Hypercorn or aioquic other than the one the patches were written for, or when a patched
function's source has changed. One module per protocol (``tcp``, ``h11``, ``h2``, ``h3``, ``quic``);
docs/hypercorn-fixes.md is the table in prose and says how to add an entry and how to upgrade.
"""

from __future__ import annotations

from collections.abc import Collection

from tusedge.server.hypercorn_fixes import h2, h3, h11, quic, quic_workers, tcp
from tusedge.server.hypercorn_fixes.table import FixesMismatch, Patch, apply, verify

PATCHES: tuple[Patch, ...] = (
    *tcp.PATCHES, *h11.PATCHES, *h2.PATCHES, *h3.PATCHES, *quic.PATCHES, *quic_workers.PATCHES
)  # fmt: skip

__all__ = ["PATCHES", "FixesMismatch", "Patch", "check", "install"]


def check(off: Collection[str] = ()) -> None:
    """Raise :class:`FixesMismatch` unless every patch matches what is installed (run before serving)."""
    verify(PATCHES, off)


def install(off: Collection[str] = ()) -> list[str]:
    """Check, then apply every patch but those named in ``off`` (idempotent, per process)."""
    return apply(PATCHES, off)
