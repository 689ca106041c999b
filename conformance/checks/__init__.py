"""One module per tus extension; importing this package registers every check. The runner orders them by
rule family (core, creation, cwu, defer, exp, sum, term, concat, ours), as SPEC-CHECKLIST.md does."""

from __future__ import annotations

from conformance.checks import (
    checksum,
    concatenation,
    core,
    core_patch,
    creation,
    defer,
    expiration,
    ours,
    termination,
)

__all__ = ["checksum", "concatenation", "core", "core_patch", "creation", "defer", "expiration", "ours", "termination"]
