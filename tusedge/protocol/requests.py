"""tus requests parsed from their headers into frozen values. Header names are looked up
case-insensitively by the caller's mapping (Starlette's ``Headers`` is)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from tusedge.errors import InvalidHeader, UnsupportedContentType, UnsupportedVersion
from tusedge.protocol.constants import OFFSET_OCTET_STREAM, SUPPORTED_VERSIONS, Header
from tusedge.protocol.headers import (
    ChecksumHeader,
    ConcatHeader,
    DeclaredLength,
    parse_checksum,
    parse_concat,
    parse_creation_length,
    parse_length,
    parse_non_negative_int,
    parse_offset,
)
from tusedge.protocol.metadata import parse_metadata


def check_version(headers: Mapping[str, str]) -> None:
    """core: "If the version specified by the Client is not supported by the Server, it MUST respond with
    the 412 Precondition Failed status and MUST include the Tus-Version header into the response. In
    addition, the Server MUST NOT process the request." A missing header is treated the same way."""
    version = headers.get(Header.TUS_RESUMABLE)
    if version is None or version.strip() not in SUPPORTED_VERSIONS:
        raise UnsupportedVersion(headers={Header.TUS_VERSION: ",".join(SUPPORTED_VERSIONS)})


def _content_length(headers: Mapping[str, str]) -> int | None:
    value = headers.get("content-length")
    return None if value is None else parse_non_negative_int("Content-Length", value)


def _has_body(headers: Mapping[str, str]) -> bool:
    length = _content_length(headers)
    return (length is not None and length > 0) or "chunked" in headers.get("transfer-encoding", "").lower()


def _is_offset_stream(headers: Mapping[str, str]) -> bool:
    return headers.get("content-type", "").split(";")[0].strip().lower() == OFFSET_OCTET_STREAM


@dataclass(frozen=True, slots=True)
class CreateUpload:
    length: DeclaredLength
    metadata: str | None
    concat: ConcatHeader | None
    has_body: bool
    content_length: int | None
    checksum: ChecksumHeader | None


def parse_create(headers: Mapping[str, str]) -> CreateUpload:
    concat = parse_concat(headers.get(Header.UPLOAD_CONCAT))
    length = parse_creation_length(
        headers.get(Header.UPLOAD_LENGTH),
        headers.get(Header.UPLOAD_DEFER_LENGTH),
        is_final=concat is not None and concat.final,
    )
    metadata = headers.get(Header.UPLOAD_METADATA)
    parse_metadata(metadata)  # validate now; we keep the header as sent
    has_body = _has_body(headers)
    if has_body:
        # creation-with-upload: the body is only taken as upload data with the tus content type.
        if not _is_offset_stream(headers):
            raise UnsupportedContentType()
        if concat is not None and concat.final:
            raise InvalidHeader("a final upload cannot carry a body")
    return CreateUpload(
        length=length,
        metadata=metadata.strip() if metadata else None,
        concat=concat,
        has_body=has_body,
        content_length=_content_length(headers),
        checksum=parse_checksum(headers.get(Header.UPLOAD_CHECKSUM)),
    )


@dataclass(frozen=True, slots=True)
class AppendChunk:
    offset: int
    length: int | None  # Upload-Length sent with the PATCH, for deferred-length uploads
    content_length: int | None  # None for a chunked body
    checksum: ChecksumHeader | None


def parse_append(headers: Mapping[str, str]) -> AppendChunk:
    """core: "All PATCH requests MUST use Content-Type: application/offset+octet-stream, otherwise the
    server SHOULD return a 415 Unsupported Media Type status." """
    if not _is_offset_stream(headers):
        raise UnsupportedContentType()
    return AppendChunk(
        offset=parse_offset(headers.get(Header.UPLOAD_OFFSET)),
        length=parse_length(headers.get(Header.UPLOAD_LENGTH)),
        content_length=_content_length(headers),
        checksum=parse_checksum(headers.get(Header.UPLOAD_CHECKSUM)),
    )
