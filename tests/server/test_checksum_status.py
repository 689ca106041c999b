"""``Upload-Checksum-Status`` (ours, docs/checksums.md) of an upload that declared a whole-file digest:
decided by the upload's status and its failure reason (a value), never by the words of its error."""

from __future__ import annotations

import base64
from datetime import UTC, datetime

import pytest
from upload_records import upload_info

from tusedge.protocol.upload import Failure, Status, UploadInfo
from tusedge.server.responses import checksum_status

DECLARED = "checksum " + base64.b64encode(b"sha256 " + base64.b64encode(bytes(32))).decode()


def _upload(status: Status, metadata: str | None = DECLARED, **changes: object) -> UploadInfo:
    return upload_info("a" * 32, datetime(2025, 3, 1, tzinfo=UTC), status=status, metadata=metadata, **changes)


@pytest.mark.parametrize(
    ("status", "failure", "error", "expected"),
    [
        (Status.ACTIVE, None, None, "pending"),
        (Status.FINISHING, None, None, "pending"),
        (Status.COMPLETE, None, None, "verified"),
        (Status.FAILED, Failure.DIGEST_MISMATCH, "the words do not matter", "mismatch"),
        (Status.FAILED, Failure.PART_GONE, "even when they name the digest", "failed"),
    ],
)
def test_checksum_status_comes_from_the_failure_reason_not_the_words(
    status: Status, failure: Failure | None, error: str | None, expected: str
) -> None:
    assert checksum_status(_upload(status, failure=failure, error=error)) == expected


def test_no_checksum_status_without_a_declared_digest() -> None:
    assert checksum_status(_upload(Status.FAILED, metadata=None, failure=Failure.DIGEST_MISMATCH)) is None
