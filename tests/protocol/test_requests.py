"""tusedge.protocol.requests: whole requests from their headers (version, content type, creation, PATCH).

Headers are given as Starlette's case-insensitive ``Headers``, the mapping the routes pass in."""

from __future__ import annotations

import hashlib

import pytest
from starlette.datastructures import Headers

from tusedge.errors import (
    InvalidConcat,
    InvalidHeader,
    InvalidMetadata,
    LengthRequired,
    TusError,
    UnsupportedContentType,
    UnsupportedVersion,
)
from tusedge.protocol.constants import TUS_VERSION
from tusedge.protocol.headers import ChecksumHeader, ConcatHeader, DeclaredLength
from tusedge.protocol.requests import check_version, parse_append, parse_create

OCTETS = "application/offset+octet-stream"


def _headers(**values: str) -> Headers:
    return Headers({name.replace("_", "-"): value for name, value in values.items()})


# --- core.version-412 ---------------------------------------------------------------------------------


@pytest.mark.parametrize("version", ["1.0.0", " 1.0.0 "])
def test_supported_version_passes(version: str) -> None:
    check_version(_headers(Tus_Resumable=version))


def test_version_header_is_case_insensitive_by_name() -> None:
    check_version(Headers(raw=[(b"tus-resumable", b"1.0.0")]))


@pytest.mark.parametrize("version", [None, "", "0.2.2", "1.0", "1.0.0,0.2.2", "2.0.0", "v1.0.0", "1.0.0.0"])
def test_unsupported_or_missing_version_is_412_with_tus_version(version: str | None) -> None:
    """core.version-412: "If the version specified by the Client is not supported by the Server, it MUST
    respond with the 412 Precondition Failed status and MUST include the Tus-Version header"."""
    headers = _headers() if version is None else _headers(Tus_Resumable=version)
    with pytest.raises(UnsupportedVersion) as info:
        check_version(headers)
    assert info.value.status == 412
    assert info.value.headers == {"Tus-Version": TUS_VERSION}


# --- creation -----------------------------------------------------------------------------------------


def test_create_with_length_and_metadata() -> None:
    """creation.201 / creation.metadata: the metadata is validated and kept as sent."""
    request = parse_create(_headers(Upload_Length="100", Upload_Metadata=" filename d29ybGQudHh0 "))
    assert request.length == DeclaredLength(100)
    assert request.metadata == "filename d29ybGQudHh0"
    assert request.concat is None
    assert not request.has_body
    assert request.content_length is None
    assert request.checksum is None


def test_create_deferred() -> None:
    """defer.create: Upload-Defer-Length: 1 creates an upload of unknown length."""
    request = parse_create(_headers(Upload_Defer_Length="1"))
    assert request.length.deferred


def test_create_without_length_is_length_required() -> None:
    """creation.length-required: neither Upload-Length nor Upload-Defer-Length: 1 is 400."""
    with pytest.raises(LengthRequired):
        parse_create(_headers())


@pytest.mark.parametrize(
    ("headers", "error"),
    [
        ({"Upload-Length": "-1"}, InvalidHeader),
        ({"Upload-Length": "1e3"}, InvalidHeader),
        ({"Upload-Defer-Length": "0"}, InvalidHeader),
        ({"Upload-Length": "5", "Upload-Defer-Length": "1"}, InvalidHeader),
        ({"Upload-Length": "5", "Upload-Metadata": "a YQ==,a YQ=="}, InvalidMetadata),
        ({"Upload-Length": "5", "Upload-Metadata": "k !!"}, InvalidMetadata),
        ({"Upload-Length": "5", "Upload-Concat": "whole"}, InvalidConcat),
        ({"Upload-Length": "5", "Upload-Concat": "final;/files/a"}, InvalidConcat),
        ({"Upload-Concat": "final;"}, InvalidConcat),
        ({"Upload-Length": "5", "Upload-Checksum": "sha1"}, InvalidHeader),
        ({"Upload-Length": "5", "Content-Length": "-3"}, InvalidHeader),
        ({"Upload-Length": "5", "Content-Length": "3", "Content-Type": "text/plain"}, UnsupportedContentType),
        ({"Upload-Length": "5", "Content-Length": "3"}, UnsupportedContentType),
        ({"Upload-Length": "5", "Transfer-Encoding": "chunked"}, UnsupportedContentType),
        (
            {"Upload-Concat": "final;/files/a", "Content-Length": "3", "Content-Type": OCTETS},
            InvalidHeader,
        ),
    ],
)
def test_bad_creation_requests_are_refused(headers: dict[str, str], error: type[TusError]) -> None:
    with pytest.raises(error):
        parse_create(Headers(headers))


def test_creation_with_upload_body_needs_octet_stream() -> None:
    """cwu.body: a POST may carry the first bytes with Content-Type: application/offset+octet-stream."""
    request = parse_create(_headers(Upload_Length="10", Content_Length="3", Content_Type=OCTETS))
    assert request.has_body
    assert request.content_length == 3


@pytest.mark.parametrize("content_type", [OCTETS, "Application/Offset+Octet-Stream", f"{OCTETS}; charset=x"])
def test_offset_octet_stream_matched_without_case_or_parameters(content_type: str) -> None:
    request = parse_create(_headers(Upload_Length="10", Transfer_Encoding="chunked", Content_Type=content_type))
    assert request.has_body
    assert request.content_length is None


def test_create_with_empty_body_needs_no_content_type() -> None:
    request = parse_create(_headers(Upload_Length="10", Content_Length="0", Content_Type="text/plain"))
    assert not request.has_body
    assert request.content_length == 0


def test_create_partial_and_final() -> None:
    """concat.partial / concat.final."""
    partial = parse_create(_headers(Upload_Length="10", Upload_Concat="partial"))
    assert partial.concat == ConcatHeader(partial=True)
    final = parse_create(_headers(Upload_Concat="final;/files/a /files/b"))
    assert final.concat == ConcatHeader(partial=False, parts=("/files/a", "/files/b"))
    assert final.length.length is None


def test_create_checksum_parsed() -> None:
    request = parse_create(
        _headers(
            Upload_Length="3",
            Content_Length="3",
            Content_Type=OCTETS,
            Upload_Checksum="sha1 qZk+NkcGgWq6PiVxeFDCbJzQ2J0=",
        )
    )
    assert request.checksum == ChecksumHeader("sha1", hashlib.sha1(b"abc").digest())


# --- PATCH --------------------------------------------------------------------------------------------


def test_append_parsed() -> None:
    """core.patch-204: PATCH with Upload-Offset and the tus content type."""
    chunk = parse_append(_headers(Content_Type=OCTETS, Upload_Offset="5", Content_Length="10"))
    assert chunk.offset == 5
    assert chunk.length is None
    assert chunk.content_length == 10
    assert chunk.checksum is None


def test_append_may_declare_a_deferred_length() -> None:
    """defer.set-once: a later PATCH sets Upload-Length."""
    chunk = parse_append(_headers(Content_Type=OCTETS, Upload_Offset="0", Upload_Length="42"))
    assert chunk.length == 42
    assert chunk.content_length is None


@pytest.mark.parametrize("content_type", [None, "", "application/octet-stream", "text/plain", "application/offset"])
def test_append_without_octet_stream_is_415(content_type: str | None) -> None:
    """core.patch-content-type: "All PATCH requests MUST use Content-Type: application/offset+octet-stream,
    otherwise the server SHOULD return a 415 Unsupported Media Type status"."""
    headers = {"Upload-Offset": "0"}
    if content_type is not None:
        headers["Content-Type"] = content_type
    with pytest.raises(UnsupportedContentType) as info:
        parse_append(Headers(headers))
    assert info.value.status == 415


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Upload-Offset": "-1"},
        {"Upload-Offset": "+5"},
        {"Upload-Offset": ""},
        {"Upload-Offset": "١٢".encode().decode("latin-1")},  # Arabic-Indic digits as they arrive: latin-1
        {"Upload-Offset": "0", "Upload-Length": "x"},
        {"Upload-Offset": "0", "Content-Length": "1e3"},
        {"Upload-Offset": "0", "Upload-Checksum": "sha1 ***"},
    ],
)
def test_append_with_bad_numbers_or_checksum_is_400(headers: dict[str, str]) -> None:
    """core.numbers: Upload-Offset and Upload-Length are non-negative integers; anything else is 400."""
    with pytest.raises(InvalidHeader) as info:
        parse_append(Headers({"Content-Type": OCTETS, **headers}))
    assert info.value.status == 400
