"""The table of Hypercorn patches: what each replaces, why, and the check that it still replaces what it was
written against.

A :class:`Patch` names one attribute of one Hypercorn (or aioquic) class, builds its replacement from the
original, and carries a fingerprint of the original's source. :func:`verify` compares the installed package
versions and every fingerprint with the table and raises :class:`FixesMismatch` listing each difference, so
an upgrade never runs unpatched or mispatched code silently: a changed upstream function has to be read
again, and its patch adapted or dropped, before the server starts. docs/hypercorn-fixes.md says how.
"""

from __future__ import annotations

import hashlib
import inspect
import logging
import re
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass
from importlib import metadata
from typing import Any, Literal

log = logging.getLogger("tusedge.hypercorn_fixes")

REQUIRED_VERSIONS: Mapping[str, str] = {"hypercorn": "0.18.0", "aioquic": "1.7"}
"""Distributions the patches (and ``tusedge.client.http3``, which reads aioquic's private fields) were written
against: an exact version, or a ``major.minor`` prefix. pyproject.toml pins the same."""


class FixesMismatch(RuntimeError):
    """The installed Hypercorn/aioquic is not what the patches were written against."""


@dataclass(frozen=True, slots=True)
class Patch:
    name: str
    """Short id: in error messages, docs/hypercorn-fixes.md and ``--hypercorn-fixes-off``."""
    target: type
    attribute: str
    build: Callable[[Any], Any]
    """Takes the original attribute, returns its replacement (a wrapper calls the original; a ``replace``
    ignores it)."""
    kind: Literal["wrap", "replace"]
    fingerprint: str
    """First 16 hex digits of the SHA-256 of the original's source (:func:`fingerprint_of`)."""
    reason: str
    upstream: str
    """Where upstream stands: the file and function in Hypercorn, an issue or pull request if one exists."""
    test: str
    """Node id of the test that fails without this patch (tests/server/test_hypercorn_fixes.py runs it
    with the patch off and expects it to fail)."""

    @property
    def target_name(self) -> str:
        return f"{self.target.__module__}.{self.target.__qualname__}.{self.attribute}"


def fingerprint_of(function: Any) -> str:
    """Fingerprint of a function's (or a class attribute's) source text."""
    source = inspect.getsource(getattr(function, "__func__", function))
    return hashlib.sha256(source.encode()).hexdigest()[:16]


def original_of(patch: Patch) -> Any:
    """The attribute as the target class defines it (before any patch), or None if it defines none."""
    return _originals.get((patch.target, patch.attribute), patch.target.__dict__.get(patch.attribute))


def _version_matches(installed: str, required: str) -> bool:
    parts = re.split(r"[.+-]", installed)
    wanted = required.split(".")
    return parts[: len(wanted)] == wanted


def problems(patches: Iterable[Patch], versions: Mapping[str, str] = REQUIRED_VERSIONS) -> list[str]:
    """Every difference between the table and what is installed, one line each (empty: all as expected)."""
    found = []
    for distribution, required in versions.items():
        try:
            installed = metadata.version(distribution)
        except metadata.PackageNotFoundError:
            found.append(f"{distribution} is not installed (the fixes need {required})")
            continue
        if not _version_matches(installed, required):
            found.append(f"{distribution} {installed} is installed; the fixes were written for {required}")
    for patch in patches:
        original = original_of(patch)
        if original is None:
            found.append(f"{patch.name}: {patch.target_name} no longer exists")
            continue
        try:
            actual = fingerprint_of(original)
        except (OSError, TypeError):
            found.append(f"{patch.name}: the source of {patch.target_name} cannot be read to check it")
            continue
        if actual != patch.fingerprint:
            found.append(
                f"{patch.name}: {patch.target_name} changed upstream (fingerprint {actual}, the patch was"
                f" written for {patch.fingerprint})"
            )
    return found


def verify(patches: Collection[Patch], off: Collection[str] = ()) -> None:
    """Raise :class:`FixesMismatch` if anything installed differs from the table, or ``off`` names a
    patch that does not exist."""
    names = [patch.name for patch in patches]
    duplicated = sorted({name for name in names if names.count(name) > 1})
    unknown = sorted(set(off) - set(names))
    found = [f"{name}: two patches have this name" for name in duplicated]
    found += [f"{name}: no such fix (hypercorn_fixes_off)" for name in unknown]
    found += problems(patches)
    if found:
        raise FixesMismatch(
            "the Hypercorn fixes do not match what is installed, so the server does not start"
            " (docs/hypercorn-fixes.md says how to upgrade):\n  " + "\n  ".join(found)
        )


_originals: dict[tuple[type, str], Any] = {}  # what each patched attribute was before any patch
_applied: set[str] = set()


def apply(patches: Collection[Patch], off: Collection[str] = ()) -> list[str]:
    """Verify, then replace each patched attribute (once per process); returns the names applied now.

    Two patches of one attribute stack: the later one wraps the earlier one's replacement, and both are
    checked against the fingerprint of the true original."""
    verify(patches, off)
    applied = []
    for patch in patches:
        if patch.name in _applied:
            continue  # installed before in this process
        _applied.add(patch.name)
        current = patch.target.__dict__[patch.attribute]
        _originals.setdefault((patch.target, patch.attribute), current)
        if patch.name in off:
            log.warning("Hypercorn fix %s is off: %s runs unpatched (%s)", patch.name, patch.target_name, patch.reason)
            continue
        setattr(patch.target, patch.attribute, patch.build(current))
        applied.append(patch.name)
    return applied
