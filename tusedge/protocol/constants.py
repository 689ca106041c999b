"""Wire constants of tus 1.0.0 (https://tus.io/protocols/resumable-upload)."""

from __future__ import annotations

from enum import StrEnum

TUS_VERSION = "1.0.0"
SUPPORTED_VERSIONS = (TUS_VERSION,)
OFFSET_OCTET_STREAM = "application/offset+octet-stream"

# ours: the Upload-Metadata key declaring the whole file's digest, "<algorithm> <base64 digest>".
DIGEST_METADATA_KEY = "checksum"

# Largest length/offset we accept: SQLite and PostgreSQL store them as signed 64-bit integers.
MAX_INT64 = 2**63 - 1


class Header(StrEnum):
    TUS_RESUMABLE = "Tus-Resumable"
    TUS_VERSION = "Tus-Version"
    TUS_EXTENSION = "Tus-Extension"
    TUS_MAX_SIZE = "Tus-Max-Size"
    TUS_CHECKSUM_ALGORITHM = "Tus-Checksum-Algorithm"
    UPLOAD_OFFSET = "Upload-Offset"
    UPLOAD_LENGTH = "Upload-Length"
    UPLOAD_DEFER_LENGTH = "Upload-Defer-Length"
    UPLOAD_METADATA = "Upload-Metadata"
    UPLOAD_EXPIRES = "Upload-Expires"
    UPLOAD_CHECKSUM = "Upload-Checksum"
    UPLOAD_CONCAT = "Upload-Concat"
    # ours: whole-file verification (docs/checksums.md)
    TUS_UPLOAD_DIGEST_ALGORITHM = "Tus-Upload-Digest-Algorithm"
    UPLOAD_CHECKSUM_STATUS = "Upload-Checksum-Status"
    # ours: the unit a client should cut parallel parts on (docs/concatenation.md#aligned-parts)
    TUSEDGE_PART_ALIGNMENT = "Tusedge-Part-Alignment"
    METHOD_OVERRIDE = "X-HTTP-Method-Override"
    LOCATION = "Location"
    ACCEPT_ENCODING = "Accept-Encoding"
    CACHE_CONTROL = "Cache-Control"


class Extension(StrEnum):
    CREATION = "creation"
    CREATION_WITH_UPLOAD = "creation-with-upload"
    CREATION_DEFER_LENGTH = "creation-defer-length"
    EXPIRATION = "expiration"
    CHECKSUM = "checksum"
    TERMINATION = "termination"
    CONCATENATION = "concatenation"
    CONCATENATION_UNFINISHED = "concatenation-unfinished"


# Every header a browser on another origin must be able to read from our responses.
EXPOSED_HEADERS = (
    Header.TUS_RESUMABLE,
    Header.TUS_VERSION,
    Header.TUS_EXTENSION,
    Header.TUS_MAX_SIZE,
    Header.TUS_CHECKSUM_ALGORITHM,
    Header.UPLOAD_OFFSET,
    Header.UPLOAD_LENGTH,
    Header.UPLOAD_DEFER_LENGTH,
    Header.UPLOAD_METADATA,
    Header.UPLOAD_EXPIRES,
    Header.UPLOAD_CONCAT,
    Header.LOCATION,
    Header.UPLOAD_CHECKSUM_STATUS,
    Header.TUS_UPLOAD_DIGEST_ALGORITHM,
    Header.TUSEDGE_PART_ALIGNMENT,
    Header.ACCEPT_ENCODING,
    "Content-Disposition",
    "Content-Range",
    "Accept-Ranges",
)
