"""tusedge.protocol.metadata: the Upload-Metadata grammar and file names safe for Content-Disposition."""

from __future__ import annotations

import unicodedata

import pytest

from tusedge.errors import InvalidHeader, InvalidMetadata
from tusedge.protocol.metadata import MAX_METADATA_BYTES, format_metadata, parse_metadata, safe_filename


@pytest.mark.parametrize("header", [None, "", "   "])
def test_absent_or_empty_metadata_is_empty(header: str | None) -> None:
    assert parse_metadata(header) == {}


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("filename d29ybGQudHh0", {"filename": b"world.txt"}),
        ("filename d29ybGQudHh0,is_confidential", {"filename": b"world.txt", "is_confidential": b""}),
        ("a YQ==, b Yg==", {"a": b"a", "b": b"b"}),
        ("flag ", {"flag": b""}),
        ("bin AP8=", {"bin": b"\x00\xff"}),
        ("x-key.1~!#$%&'*+/:;<=>?@[]^_`{|} YQ==", {"x-key.1~!#$%&'*+/:;<=>?@[]^_`{|}": b"a"}),
    ],
)
def test_metadata_pairs_decoded(header: str, expected: dict[str, bytes]) -> None:
    """creation.metadata: "comma-separated key-value pairs ... The value MAY be empty. In these cases, the
    space, which would normally separate the key and the value, MAY be left out." """
    assert parse_metadata(header) == expected


@pytest.mark.parametrize(
    "header",
    [
        "filename d29ybGQudHh0!",  # not Base64
        "filename d29ybGQudHh",  # bad padding
        "filename d29y bGQu",  # three fields: a key with a space
        "my key YQ==",
        "a YQ==,a Yg==",  # duplicate key
        "a,a",
        ",a YQ==",  # empty key
        "a YQ==,",
        "a YQ==,,b Yg==",
        "a\tYQ==",  # tab is not the separator and not a key character
        "ключ YQ==",  # keys are ASCII without space and comma
        "a\x00 YQ==",
        "a -_8=",  # URL-safe Base64
    ],
)
def test_malformed_metadata_is_400(header: str) -> None:
    """creation.metadata: "keys non-empty, without spaces or commas, unique ... Malformed metadata: 400"."""
    with pytest.raises(InvalidMetadata) as info:
        parse_metadata(header)
    assert isinstance(info.value, InvalidHeader)
    assert info.value.status == 400


def _header_of_length(size: int) -> str:
    # "abc " + Base64 of zeros; any length 4k + len("abc ") is valid.
    prefix = "abc " if size % 4 == 0 else "abcd "
    body = size - len(prefix)
    return prefix + "A" * body


def test_metadata_up_to_64_kib_accepted() -> None:
    header = _header_of_length(MAX_METADATA_BYTES)
    assert len(header) == MAX_METADATA_BYTES == 64 * 1024
    assert parse_metadata(header) == {"abc": bytes(3 * (MAX_METADATA_BYTES - 4) // 4)}


def test_metadata_over_64_kib_refused() -> None:
    """ours: Upload-Metadata longer than 64 KiB is refused with 400 before it is decoded."""
    header = _header_of_length(MAX_METADATA_BYTES + 1)
    assert len(header) == MAX_METADATA_BYTES + 1
    with pytest.raises(InvalidMetadata):
        parse_metadata(header)


def test_format_metadata_encodes_and_leaves_empty_values_bare() -> None:
    header = format_metadata({"filename": "world.txt", "flag": b"", "raw": b"\x00\xff", "name": "naïve"})
    assert header == "filename d29ybGQudHh0,flag,raw AP8=,name bmHDr3Zl"


def test_format_then_parse_round_trip() -> None:
    values = {"filename": "résumé 2024.pdf".encode(), "empty": b"", "bin": bytes(range(256))}
    assert parse_metadata(format_metadata(values)) == values


@pytest.mark.parametrize("key", ["", "a b", "a,b", "ключ", "a\tb", "a\nb"])
def test_format_metadata_refuses_keys_the_grammar_forbids(key: str) -> None:
    """creation.metadata: "The key MUST NOT contain spaces and commas and MUST NOT be empty"."""
    with pytest.raises(InvalidMetadata):
        format_metadata({key: b"x"})


# --- safe_filename (ours.get: a safe Content-Disposition) ---------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b"report.pdf", "report.pdf"),
        ("résumé.pdf".encode(), "résumé.pdf"),
        (b"../../etc/passwd", "passwd"),
        (b"/etc/passwd", "passwd"),
        (b"C:\\x\\y.txt", "y.txt"),
        (b"..\\..\\boot.ini", "boot.ini"),
        (b"a\x00b\nc\r.txt", "abc.txt"),
        (b'"quoted".txt', "quoted.txt"),
        (b"a<b>c:d|e?f*g.txt", "abcdefg.txt"),
        (b"evil\r\nSet-Cookie: x=1", "evilSet-Cookie x=1"),
        ("invoice\u202etxt.exe".encode(), "invoicetxt.exe"),  # right-to-left override (category Cf)
        (b"  name.txt. ", "name.txt"),
    ],
)
def test_safe_filename_keeps_only_the_last_clean_component(raw: bytes, expected: str) -> None:
    """ours.get: GET returns "a safe Content-Disposition": no path, no control characters, no quotes."""
    assert safe_filename(raw, "fallback") == expected


@pytest.mark.parametrize("raw", [None, b"", b"..", b"...", b"/", b"dir/", b"C:\\", b"\x00\x01", b'""', b"  ", b". ."])
def test_safe_filename_falls_back_when_nothing_usable_is_left(raw: bytes | None) -> None:
    assert safe_filename(raw, "abc123") == "abc123"


@pytest.mark.parametrize(
    "raw",
    [b"../" * 100 + b"x", b"a" * 1000, "\u0000\u202e\u2028x/y\\z\"'".encode(), b"\xff\xfe\xfd", bytes(range(256))],
)
def test_safe_filename_never_contains_separators_controls_or_quotes(raw: bytes) -> None:
    name = safe_filename(raw, "fallback")
    assert 0 < len(name) <= 255
    assert not any(ch in name for ch in '/\\"<>:|?*')
    assert all(unicodedata.category(ch)[0] != "C" for ch in name)
    assert name not in (".", "..")
