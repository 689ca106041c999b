"""The ``Upload-Metadata`` grammar (creation extension), shared by server and client.

"The Upload-Metadata request and response header MUST consist of one or more comma-separated key-value
pairs. The key and value MUST be separated by a space. The key MUST NOT contain spaces and commas and
MUST NOT be empty. The key SHOULD be ASCII encoded and the value MUST be Base64 encoded. All keys MUST
be unique. The value MAY be empty. In these cases, the space, which would normally separate the key and
the value, MAY be left out."  -- https://tus.io/protocols/resumable-upload#upload-metadata
"""

from __future__ import annotations

import base64
import binascii
import re
import unicodedata
from collections.abc import Mapping

from tusedge.errors import InvalidMetadata

MAX_METADATA_BYTES = 64 * 1024
MAX_REQUEST_HEAD_BYTES = MAX_METADATA_BYTES + 16 * 1024
"""The one limit on a request's head (request line and header lines), for every transport: the largest
Upload-Metadata plus 16 KiB (Hypercorn's whole default) for everything else, so any metadata this server
takes fits, however the head arrives. Past it: 431 (docs/configuration.md)."""
_KEY = re.compile(r"[\x21-\x2b\x2d-\x7e]+")  # printable ASCII without space and comma


def parse_metadata(header: str | None) -> dict[str, bytes]:
    """Decode the header into ``{key: raw value}``. Values are bytes: the spec does not say they are text."""
    if header is None or header.strip() == "":
        return {}
    if len(header) > MAX_METADATA_BYTES:
        raise InvalidMetadata(f"Upload-Metadata is longer than {MAX_METADATA_BYTES} bytes")
    result: dict[str, bytes] = {}
    for pair in header.split(","):
        fields = pair.strip().split(" ")
        if len(fields) > 2:
            raise InvalidMetadata("each Upload-Metadata pair is 'key base64value'")
        key = fields[0]
        if not _KEY.fullmatch(key):
            raise InvalidMetadata(f"invalid Upload-Metadata key {key[:40]!r}")
        if key in result:
            raise InvalidMetadata(f"duplicate Upload-Metadata key {key[:40]!r}")
        encoded = fields[1] if len(fields) == 2 else ""
        try:
            result[key] = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            raise InvalidMetadata(f"Upload-Metadata value of {key[:40]!r} is not valid base64") from None
    return result


def format_metadata(metadata: Mapping[str, bytes | str]) -> str:
    """Encode ``{key: value}`` for the header; str values are UTF-8 encoded."""
    pairs = []
    for key, value in metadata.items():
        if not _KEY.fullmatch(key):
            raise InvalidMetadata(f"invalid Upload-Metadata key {key[:40]!r}")
        raw = value.encode() if isinstance(value, str) else value
        pairs.append(f"{key} {base64.b64encode(raw).decode('ascii')}" if raw else key)
    return ",".join(pairs)


def safe_filename(raw: bytes | None, fallback: str) -> str:
    """A file name safe to offer in Content-Disposition: the last path component of the client's name,
    without control characters, quotes or path separators; ``fallback`` when nothing usable is left."""
    if not raw:
        return fallback
    name = raw.decode("utf-8", errors="replace")
    name = name.replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(ch for ch in name if unicodedata.category(ch)[0] != "C" and ch not in '"<>:|?*')
    name = name.strip(" .")[:255]
    return name or fallback
