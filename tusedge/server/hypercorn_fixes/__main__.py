"""``python -m tusedge.server.hypercorn_fixes``: the patch table against what is installed, one line per
patch with its current fingerprint, for upgrading Hypercorn (docs/hypercorn-fixes.md)."""

from __future__ import annotations

import sys

from tusedge.server.hypercorn_fixes import PATCHES
from tusedge.server.hypercorn_fixes.table import fingerprint_of, original_of, problems


def main() -> int:
    for patch in PATCHES:
        original = original_of(patch)
        actual = fingerprint_of(original) if original is not None else "(gone)"
        state = "ok" if actual == patch.fingerprint else "CHANGED"
        print(f"{state:8} {patch.name:24} {patch.kind:8} {actual:17} {patch.target_name}")
    found = problems(PATCHES)
    for line in found:
        print(f"mismatch: {line}", file=sys.stderr)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
