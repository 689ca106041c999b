"""Property-based tests of the protocol layer (hypothesis): every parser of client input, fed arbitrary
text, answers a value or a :class:`TusError` (a 4xx with a reason), never another exception (a 500); what it
accepts is within the grammar's bounds; and formatting then parsing gives back what was formatted.

The examples are seeded (``derandomize``) so that CI runs the same ones every time; a failure prints its
smallest input."""

from __future__ import annotations

import string
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tusedge.errors import TusError
from tusedge.ids import is_upload_id, new_upload_id
from tusedge.protocol.concat import part_ids
from tusedge.protocol.constants import MAX_INT64
from tusedge.protocol.headers import (
    ChecksumHeader,
    ConcatHeader,
    check_host,
    fold_request_headers,
    parse_checksum,
    parse_concat,
    parse_content_encoding,
    parse_creation_length,
    parse_non_negative_int,
)
from tusedge.protocol.metadata import MAX_METADATA_BYTES, format_metadata, parse_metadata, safe_filename
from tusedge.protocol.requests import check_version, parse_append, parse_create
from tusedge.protocol.upload import Status, UploadInfo, check_body_fits, resolve_length, room_left

settings.register_profile("tusedge", derandomize=True, max_examples=200, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])  # fmt: skip
settings.load_profile("tusedge")

# Header values as a client may send them: any text (ASGI gives latin-1), and text near the grammar.
NEAR = st.sampled_from(["", " ", "0", "1", "-1", "+1", "1e3", "0x10", "\u0663", "\uff11", " 7 ", "\t5",
                        "9" * 19, "9" * 20, str(MAX_INT64), str(MAX_INT64 + 1), "partial", "final;", "final; ",
                        "sha1 ", " sha1 x", "sha1 YWJj", "key", "key ", "key YWJj", ",", "a,a", "a b c",
                        "\x00", "é"])  # fmt: skip
VALUES = st.one_of(NEAR, st.text(max_size=80), st.text(alphabet=string.printable, max_size=80),
                   st.binary(max_size=40).map(lambda b: b.decode("latin-1")))  # fmt: skip
TUS_NAMES = ["tus-resumable", "upload-offset", "upload-length", "upload-defer-length", "upload-metadata",
             "upload-checksum", "upload-concat", "content-type", "content-length", "transfer-encoding",
             "content-encoding"]  # fmt: skip
HEADERS = st.dictionaries(st.sampled_from(TUS_NAMES), VALUES, max_size=8)


def outcome(parse: Callable[[], Any]) -> Any:
    """The parser's value, or None when it refused with a TusError; anything else fails the test."""
    try:
        return parse()
    except TusError as exc:
        assert 400 <= exc.status < 500, (exc.status, exc)
        assert exc.message, "a refusal carries a reason"
        return None


@given(VALUES)
@example("00000000000000000001")  # 20 characters
def test_non_negative_int_is_within_0_and_int64_or_refused(value: str) -> None:
    number = outcome(lambda: parse_non_negative_int("Upload-Offset", value))
    if number is not None:
        assert 0 <= number <= MAX_INT64
        assert value.strip(" \t").isascii() and value.strip(" \t").isdigit()


@given(st.integers(0, MAX_INT64), st.sampled_from(["", " ", "\t", "  "]))
def test_every_int64_round_trips_with_optional_whitespace(number: int, ows: str) -> None:
    assert parse_non_negative_int("Upload-Length", f"{ows}{number}{ows}") == number


@given(VALUES)
def test_metadata_parses_or_is_refused(value: str) -> None:
    parsed = outcome(lambda: parse_metadata(value))
    if parsed is not None:
        assert all(key and " " not in key and "," not in key for key in parsed)
        assert len(value) <= MAX_METADATA_BYTES or not parsed


KEYS = st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E, exclude_characters=","),
               min_size=1, max_size=20)  # fmt: skip


@given(st.dictionaries(KEYS, st.binary(max_size=64), max_size=10))
def test_metadata_round_trips(metadata: dict[str, bytes]) -> None:
    assert parse_metadata(format_metadata(metadata)) == metadata


@given(st.binary(max_size=300))
def test_safe_filename_never_has_separators_or_controls(raw: bytes) -> None:
    name = safe_filename(raw, "upload")
    assert name and "/" not in name and "\\" not in name and '"' not in name
    assert all(ch.isprintable() or ch == " " for ch in name) and len(name) <= 255


@given(VALUES)
def test_checksum_parses_or_is_refused(value: str) -> None:
    parsed = outcome(lambda: parse_checksum(value))
    assert parsed is None or (parsed.algorithm and " " not in parsed.algorithm)


@given(st.sampled_from(["sha1", "md5", "sha256", "crc32"]), st.binary(min_size=1, max_size=64))
def test_checksum_round_trips(algorithm: str, digest: bytes) -> None:
    import base64

    assert parse_checksum(f"{algorithm} {base64.b64encode(digest).decode()}") == ChecksumHeader(algorithm, digest)


@given(VALUES)
def test_concat_parses_or_is_refused(value: str) -> None:
    parsed = outcome(lambda: parse_concat(value))
    assert parsed is None or parsed.partial or parsed.parts


@given(st.lists(st.text(alphabet=string.ascii_letters + string.digits + "/:.-_%", min_size=1, max_size=40),
                min_size=1, max_size=5))  # fmt: skip
def test_concat_round_trips(urls: list[str]) -> None:
    assert parse_concat("final;" + " ".join(urls)) == ConcatHeader(partial=False, parts=tuple(urls))
    assert parse_concat("partial") == ConcatHeader(partial=True)


@given(st.lists(VALUES, max_size=4))
@example(["http://[::1"])
def test_part_urls_name_our_uploads_or_are_refused(urls: list[str]) -> None:
    ids = outcome(lambda: part_ids(urls, "/files/", is_upload_id))
    assert ids is None or all(is_upload_id(upload_id) for upload_id in ids)


@given(st.lists(st.sampled_from([new_upload_id() for _ in range(3)]), min_size=1, max_size=3),
       st.sampled_from(["", "http://127.0.0.1:1080", "https://edge.example"]))  # fmt: skip
def test_part_urls_of_ours_give_their_ids(ids: list[str], origin: str) -> None:
    assert part_ids([f"{origin}/files/{upload_id}" for upload_id in ids], "/files/", is_upload_id) == ids


@given(VALUES)
def test_host_is_checked_without_crashing(value: str) -> None:
    outcome(lambda: check_host(value))


@given(VALUES)
def test_content_encoding_is_one_supported_coding_or_refused(value: str) -> None:
    coding = outcome(lambda: parse_content_encoding(value, ("zstd",)))
    assert coding in (None, "zstd")


@given(st.one_of(st.none(), VALUES), st.one_of(st.none(), VALUES), st.booleans())
def test_creation_length_is_a_number_or_deferred_or_refused(length: str | None, defer: str | None,
                                                            final: bool) -> None:  # fmt: skip
    declared = outcome(lambda: parse_creation_length(length, defer, is_final=final))
    if declared is not None and declared.length is not None:
        assert 0 <= declared.length <= MAX_INT64 and not final


@given(HEADERS)
def test_any_creation_headers_parse_or_are_refused(headers: dict[str, str]) -> None:
    outcome(lambda: check_version(headers))
    parsed = outcome(lambda: parse_create(headers))
    if parsed is not None:
        assert parsed.content_length is None or parsed.content_length >= 0
        assert not (parsed.has_body and parsed.concat is not None and parsed.concat.final)


@given(HEADERS)
def test_any_patch_headers_parse_or_are_refused(headers: dict[str, str]) -> None:
    parsed = outcome(lambda: parse_append(headers))
    if parsed is not None:
        assert 0 <= parsed.offset <= MAX_INT64
        assert headers["content-type"].split(";")[0].strip().lower() == "application/offset+octet-stream"


RAW_NAMES = st.sampled_from([name.encode() for name in TUS_NAMES] + [b"host", b"x-other", b"Upload-Offset"])


@given(st.lists(st.tuples(RAW_NAMES, VALUES.map(lambda v: v.encode("utf-8", "replace"))), max_size=10))
def test_folding_header_lines_keeps_every_other_line(raw: list[tuple[bytes, bytes]]) -> None:
    folded = outcome(lambda: fold_request_headers(raw))
    if folded is not None:
        assert [line for line in folded if line[0] != b"upload-metadata"] == [
            line for line in raw if line[0] != b"upload-metadata"
        ]
        assert sum(name == b"upload-metadata" for name, _ in folded) <= 1


SIZES = st.integers(0, MAX_INT64)


@given(st.one_of(st.none(), SIZES), SIZES, st.one_of(st.none(), SIZES), st.integers(0, 2**40))
def test_length_rules_never_let_an_offset_pass_the_length(length: int | None, offset: int, declared: int | None,
                                                          max_size: int) -> None:  # fmt: skip
    if length is not None and offset > length:
        offset, length = length, offset
    now = datetime.now(UTC)
    info = UploadInfo("a" * 32, offset, length, None, Status.ACTIVE, now)
    resolved = outcome(lambda: resolve_length(info, declared))
    if resolved is None and (declared is None and length is None):
        resolved = None  # still deferred
    if resolved is not None:
        assert resolved >= offset
        assert length is None or resolved == length
        room = room_left(resolved, offset, max_size)
        assert room is not None and room >= 0
        for body in (0, room, room + 1):
            assert fits(body, room) == (body <= room)


def fits(body: int, room: int) -> bool:
    def check() -> bool:
        check_body_fits(body, room)
        return True

    return outcome(check) is True
