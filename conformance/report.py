"""Output: one line per rule and a summary line, or one JSON document."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any

from conformance.runner import Report, Result, Status


def line(result: Result) -> str:
    """``PASS core.options — 204, Tus-Version 1.0.0 ...``"""
    return f"{result.status.value} {result.rule} — {result.reason}"


def banner(report: Report) -> str:
    """What the server advertised, printed before the results."""
    info = report.info
    versions = ", ".join(info.versions) or "(none)"
    extensions = ", ".join(sorted(info.extensions)) or "(none)"
    return f"# {report.url}: OPTIONS {info.status}; Tus-Version {versions}; Tus-Extension {extensions}"


def to_json(report: Report) -> str:
    info = report.info
    document: dict[str, Any] = {
        "url": report.url,
        "server": {
            "options_status": info.status,
            "versions": list(info.versions),
            "extensions": sorted(info.extensions),
            "max_size": info.max_size,
            "checksum_algorithms": list(info.checksum_algorithms),
        },
        "results": [asdict(result) | {"status": result.status.value} for result in report.results],
        "summary": {
            "passed": report.count(Status.PASS),
            "failed": report.count(Status.FAIL),
            "skipped": report.count(Status.SKIP),
        },
        "ok": report.ok,
    }
    return json.dumps(document, indent=2)
