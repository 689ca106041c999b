"""tusedge.protocol.headers: the grammar of every tus header value, fed good and bad input."""

from __future__ import annotations

import base64
import hashlib
from datetime import UTC, datetime, timedelta, timezone

import pytest

from tusedge.errors import InvalidConcat, InvalidHeader, InvalidMetadata, LengthRequired, TusError
from tusedge.protocol.constants import MAX_INT64
from tusedge.protocol.headers import (
    ChecksumHeader,
    ConcatHeader,
    DeclaredLength,
    check_host,
    fold_request_headers,
    format_expires,
    parse_checksum,
    parse_concat,
    parse_creation_length,
    parse_declared_digest,
    parse_defer_length,
    parse_length,
    parse_non_negative_int,
    parse_offset,
)
from tusedge.protocol.metadata import parse_metadata

SHA1_ABC = base64.b64encode(hashlib.sha1(b"abc").digest()).decode()

# --- numbers (core.numbers) -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("0", 0),
        ("12", 12),
        ("007", 7),
        (" 12 ", 12),  # RFC 9110 5.5: optional whitespace around a field value is not part of it
        ("\t12\t", 12),
        (str(MAX_INT64), MAX_INT64),
    ],
)
def test_non_negative_integer_accepted(value: str, expected: int) -> None:
    """core.numbers: "Upload-Offset ... MUST be a non-negative integer"."""
    assert parse_non_negative_int("Upload-Offset", value) == expected


@pytest.mark.parametrize(
    "value",
    [
        "",
        " ",
        "-1",
        "-0",
        "+5",
        "1e3",
        "1.0",
        "0x10",
        "1_000",  # int() takes underscores
        "12abc",
        "1 2",
        "١٢",  # Arabic-Indic digits: int() takes them
        "\uff11\uff12",  # fullwidth digits
        "²",
        "99999999999999999999",  # 20 digits
        str(MAX_INT64 + 1),  # 19 digits, above the signed 64-bit range of the database
        "NaN",
        "12,13",
    ],
)
def test_non_negative_integer_rejects_anything_else(value: str) -> None:
    """core.numbers: Upload-Offset and Upload-Length are non-negative integers; anything else is 400."""
    with pytest.raises(InvalidHeader) as info:
        parse_non_negative_int("Upload-Length", value)
    assert info.value.status == 400
    assert "Upload-Length" in info.value.message


@pytest.mark.parametrize("value", ["\xa012", "12\xa0", "\x0b12", "\x1c12", "12\x85"])
def test_non_negative_integer_only_trims_http_whitespace(value: str) -> None:
    """core.numbers: only SP and HTAB are optional whitespace around a field value (RFC 9110 5.6.3,
    OWS = *( SP / HTAB )); a number wrapped in NBSP or a control character is not a non-negative
    integer. (NBSP is obs-text, which h11 passes through to the application.)"""
    with pytest.raises(InvalidHeader):
        parse_non_negative_int("Upload-Offset", value)


def test_missing_upload_offset_is_invalid_header() -> None:
    """core: "The Request MUST include a Upload-Offset header" on PATCH."""
    with pytest.raises(InvalidHeader):
        parse_offset(None)


def test_upload_offset_parsed() -> None:
    assert parse_offset("1024") == 1024


def test_absent_upload_length_is_none() -> None:
    assert parse_length(None) is None
    assert parse_length("0") == 0


@pytest.mark.parametrize("value", ["-1", "+5", "1e3", "", "١٢"])
def test_upload_length_rejects_non_numbers(value: str) -> None:
    with pytest.raises(InvalidHeader):
        parse_length(value)


# --- creation-defer-length ----------------------------------------------------------------------------


def test_defer_length_absent_is_not_deferred() -> None:
    assert parse_defer_length(None) is False


@pytest.mark.parametrize("value", ["1", " 1 "])
def test_defer_length_one_is_deferred(value: str) -> None:
    """defer.create: "The value MUST be 1"."""
    assert parse_defer_length(value) is True


@pytest.mark.parametrize("value", ["0", "2", "", "01", "true", "yes", "1.0", "+1", "\u0661"])
def test_defer_length_other_values_are_400(value: str) -> None:
    """defer.create: Upload-Defer-Length: 1 creates an upload of unknown length; any other value is 400."""
    with pytest.raises(InvalidHeader) as info:
        parse_defer_length(value)
    assert info.value.status == 400


# --- creation length combinations --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("length", "defer", "expected"),
    [("5", None, 5), ("0", None, 0), (None, "1", None)],
)
def test_creation_length_either_length_or_defer(length: str | None, defer: str | None, expected: int | None) -> None:
    """creation: "The Client MUST send Upload-Length or Upload-Defer-Length: 1"."""
    declared = parse_creation_length(length, defer, is_final=False)
    assert declared == DeclaredLength(expected)
    assert declared.deferred is (expected is None)


def test_creation_length_neither_is_length_required() -> None:
    """creation.length-required: a POST with neither Upload-Length nor Upload-Defer-Length: 1 is 400."""
    with pytest.raises(LengthRequired) as info:
        parse_creation_length(None, None, is_final=False)
    assert info.value.status == 400


def test_creation_length_both_is_invalid() -> None:
    with pytest.raises(InvalidHeader):
        parse_creation_length("5", "1", is_final=False)


@pytest.mark.parametrize(("length", "defer"), [("-1", None), ("abc", None), (None, "0"), ("5", "0")])
def test_creation_length_bad_values_are_invalid_header(length: str | None, defer: str | None) -> None:
    with pytest.raises(InvalidHeader):
        parse_creation_length(length, defer, is_final=False)


def test_final_upload_has_no_declared_length() -> None:
    """concat.final: the final upload is created "no Upload-Length"; its length is the sum of its parts."""
    declared = parse_creation_length(None, None, is_final=True)
    assert declared.length is None


@pytest.mark.parametrize(("length", "defer"), [("5", None), (None, "1"), ("0", None)])
def test_final_upload_with_length_or_defer_is_invalid_concat(length: str | None, defer: str | None) -> None:
    """concatenation: "the Client MUST NOT include the Upload-Length header in the final upload creation"."""
    with pytest.raises(InvalidConcat):
        parse_creation_length(length, defer, is_final=True)


# --- expiration ---------------------------------------------------------------------------------------


def test_expires_is_imf_fixdate_in_gmt() -> None:
    """exp.header: "The value of the Upload-Expires header MUST be in RFC 9110 datetime format"."""
    assert format_expires(datetime(2014, 6, 25, 16, 0, tzinfo=UTC)) == "Wed, 25 Jun 2014 16:00:00 GMT"


def test_expires_converts_other_time_zones_to_gmt() -> None:
    moment = datetime(2014, 6, 25, 18, 0, 59, 999_999, tzinfo=timezone(timedelta(hours=2)))
    assert format_expires(moment) == "Wed, 25 Jun 2014 16:00:59 GMT"


# --- checksum -----------------------------------------------------------------------------------------


def test_checksum_absent_is_none() -> None:
    assert parse_checksum(None) is None


@pytest.mark.parametrize(
    ("value", "algorithm"),
    [(f"sha1 {SHA1_ABC}", "sha1"), (f"SHA1 {SHA1_ABC}", "sha1"), (f" sha1 {SHA1_ABC} ", "sha1")],
)
def test_checksum_header_algorithm_and_digest(value: str, algorithm: str) -> None:
    """sum.ok: "Upload-Checksum ... MUST consist of the name of the used checksum algorithm and the Base64
    encoded checksum separated by a space"."""
    assert parse_checksum(value) == ChecksumHeader(algorithm, hashlib.sha1(b"abc").digest())


@pytest.mark.parametrize(
    "value",
    [
        "",
        " ",
        "sha1",
        f"sha1  {SHA1_ABC}",  # two spaces
        f"sha1\t{SHA1_ABC}",
        f"sha1 {SHA1_ABC} extra",
        f"sha1:{SHA1_ABC}",
        "sha1 not*base64",
        "sha1 YWJ",  # missing padding
        "sha1 YW=j",
        "sha1 -_-_",  # URL-safe alphabet is not Base64
        f" {SHA1_ABC}",
    ],
)
def test_malformed_checksum_header_is_400(value: str) -> None:
    """sum.unsupported-400: "an unsupported algorithm (or a malformed header): 400"."""
    with pytest.raises(InvalidHeader) as info:
        parse_checksum(value)
    assert info.value.status == 400


def test_declared_digest_metadata_parsed() -> None:
    assert parse_declared_digest(None) is None
    declared = parse_declared_digest(f"sha1 {SHA1_ABC}".encode())
    assert declared == ChecksumHeader("sha1", hashlib.sha1(b"abc").digest())


@pytest.mark.parametrize("value", [b"", b"sha1", b"sha1 !!!!", b"\xff\xfe sha1", "sha1 é".encode()])
def test_malformed_declared_digest_is_invalid_metadata(value: bytes) -> None:
    with pytest.raises(InvalidMetadata):
        parse_declared_digest(value)


# --- concatenation ------------------------------------------------------------------------------------


def test_concat_absent_is_none() -> None:
    assert parse_concat(None) is None


@pytest.mark.parametrize("value", ["partial", " partial "])
def test_concat_partial(value: str) -> None:
    """concat.partial: POST with Upload-Concat: partial creates a partial upload."""
    concat = parse_concat(value)
    assert concat == ConcatHeader(partial=True)
    assert concat is not None and not concat.final


@pytest.mark.parametrize(
    ("value", "parts"),
    [
        ("final;/files/a /files/b", ("/files/a", "/files/b")),
        ("final;http://h:1/files/a", ("http://h:1/files/a",)),
        ("final; /files/a  /files/b ", ("/files/a", "/files/b")),
    ],
)
def test_concat_final_lists_parts_in_order(value: str, parts: tuple[str, ...]) -> None:
    """concat.final: Upload-Concat: final;<url> <url> ... (space-separated, absolute or relative URLs)."""
    concat = parse_concat(value)
    assert concat is not None
    assert concat.final
    assert concat.parts == parts


@pytest.mark.parametrize(
    "value",
    ["", "final", "final;", "final;   ", "Partial", "PARTIAL", "final:/files/a", "partial;/files/a", "foo", "final /a"],
)
def test_malformed_concat_is_invalid_concat(value: str) -> None:
    with pytest.raises(InvalidConcat) as info:
        parse_concat(value)
    assert isinstance(info.value, TusError)
    assert info.value.status == 400


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("partial", ConcatHeader(partial=True)),
        ("final;/files/a", ConcatHeader(partial=False, parts=("/files/a",))),
        ("final;/files/a http://x/files/b", ConcatHeader(partial=False, parts=("/files/a", "http://x/files/b"))),
    ],
)
def test_concat_values_parse(value: str, expected: ConcatHeader) -> None:
    assert parse_concat(value) == expected


# --- one value per header (RFC 9110, 5.3) ------------------------------------------------------------------
@pytest.mark.parametrize(
    "name", [b"tus-resumable", b"upload-offset", b"upload-length", b"upload-defer-length", b"upload-checksum",
             b"upload-concat", b"content-type", b"x-http-method-override"],
)  # fmt: skip
@pytest.mark.parametrize("second", [b"2", b"1"])
def test_a_single_valued_tus_header_sent_twice_is_refused_even_when_identical(name: bytes, second: bytes) -> None:
    with pytest.raises(InvalidHeader, match="2 times"):
        fold_request_headers([(name, b"1"), (b"host", b"x"), (name, second)])


def test_upload_metadata_lines_are_one_comma_separated_list() -> None:
    """Upload-Metadata is "one or more comma-separated key-value pairs": a list, whose lines are joined in order
    (empty lines add nothing); the other headers keep their order and values."""
    raw = [(b"upload-metadata", b"a YQ=="), (b"upload-length", b"5"), (b"upload-metadata", b" "),
           (b"upload-metadata", b"b Yg== ")]  # fmt: skip
    assert fold_request_headers(raw) == [(b"upload-metadata", b"a YQ==,b Yg=="), (b"upload-length", b"5")]


def test_joined_metadata_with_a_key_twice_is_still_refused_by_the_grammar() -> None:
    [(_, joined)] = fold_request_headers([(b"upload-metadata", b"a YQ=="), (b"upload-metadata", b"a Yg==")])
    with pytest.raises(InvalidMetadata, match="duplicate"):
        parse_metadata(joined.decode())


def test_headers_without_repeats_are_left_as_they_are() -> None:
    raw = [(b"accept", b"a"), (b"accept", b"b"), (b"upload-offset", b"0")]  # not ours to judge: passed through
    assert fold_request_headers(raw) == raw


@pytest.mark.parametrize("host", ["example.org", "example.org:8080", "127.0.0.1:1080", "[::1]:1080", "[::1]", "x_y",
                                  "a-b.c", "%41", ""])  # fmt: skip
def test_a_valid_host_passes(host: str) -> None:
    check_host(host)


@pytest.mark.parametrize("host", ["[", "[::1", "::1", "a b", "x:y", "a:123456", "é", "a/b", "a@b:1@", "\x00"])
def test_an_invalid_host_is_refused(host: str) -> None:
    with pytest.raises(InvalidHeader, match="Host"):
        check_host(host)
