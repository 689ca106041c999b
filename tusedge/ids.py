"""Upload ids: 128 random bits from the OS's CSPRNG, as 32 lowercase hex characters."""

from __future__ import annotations

import re
import secrets

_ID = re.compile(r"[0-9a-f]{32}")


def new_upload_id() -> str:
    return secrets.token_hex(16)


def is_upload_id(value: str) -> bool:
    return _ID.fullmatch(value) is not None
