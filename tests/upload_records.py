"""Upload records for the tests of the rules, the state and the answers: an ``UploadInfo`` with plain
defaults (an active upload of 100 bytes at offset 0, no metadata), and the fields a test changes."""

from __future__ import annotations

from datetime import datetime

from tusedge.protocol.upload import Status, UploadInfo


def upload_info(upload_id: str, created_at: datetime, /, **changes: object) -> UploadInfo:
    values: dict[str, object] = {
        "id": upload_id,
        "offset": 0,
        "length": 100,
        "metadata": None,
        "status": Status.ACTIVE,
        "created_at": created_at,
    }
    values.update(changes)
    return UploadInfo(**values)  # type: ignore[arg-type]
