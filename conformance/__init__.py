"""A tus 1.0.0 conformance suite for any tus server: ``python -m conformance https://host/files/``.

One check per rule of SPEC-CHECKLIST.md; see docs/conformance.md. In code::

    from conformance.runner import run
    report = run("http://127.0.0.1:1080/files/", ours=True)
    assert report.ok, report.summary
"""

from __future__ import annotations

from conformance.runner import Report, Result, Status, check, rule_ids, run

__all__ = ["Report", "Result", "Status", "check", "rule_ids", "run"]
