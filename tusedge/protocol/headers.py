"""Parsing and formatting of tus header values. Each parser takes the raw value (or None) and raises
:class:`~tusedge.errors.InvalidHeader` on anything the grammar does not allow."""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime

from tusedge.errors import (
    InvalidConcat,
    InvalidHeader,
    InvalidMetadata,
    LengthRequired,
    UnsupportedContentEncoding,
)
from tusedge.protocol.constants import DIGEST_METADATA_KEY, MAX_INT64, Header
from tusedge.protocol.metadata import parse_metadata

# --- one value per header ---------------------------------------------------------------------------
# RFC 9110, 5.3: "A sender MUST NOT generate multiple field lines with the same name in a message ...
# unless that field's definition allows multiple field line values to be recombined as a comma-separated
# list". Of the headers a tus request carries only Upload-Metadata is such a list ("one or more
# comma-separated key-value pairs"); its lines are joined. Any other of them sent twice, even with the same
# value, is refused: taking the first (as a dict would) lets a proxy and the server disagree on the value.
SINGLE_VALUED = frozenset(
    name.lower().encode()
    for name in (
        Header.TUS_RESUMABLE,
        Header.UPLOAD_OFFSET,
        Header.UPLOAD_LENGTH,
        Header.UPLOAD_DEFER_LENGTH,
        Header.UPLOAD_CHECKSUM,
        Header.UPLOAD_CONCAT,
        Header.METHOD_OVERRIDE,
        "Content-Type",
    )
)
LIST_VALUED = frozenset({Header.UPLOAD_METADATA.lower().encode()})


def fold_request_headers(raw: Sequence[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """The request's header lines (ASGI's lower-cased ``(name, value)`` pairs) with the lines of a list
    header joined into one; InvalidHeader when a single-valued tus header appears more than once."""
    seen: dict[bytes, int] = {}
    for name, _ in raw:
        name = name.lower()
        if name in SINGLE_VALUED or name in LIST_VALUED:
            seen[name] = seen.get(name, 0) + 1
    repeated = [name for name, count in seen.items() if count > 1]
    for name in repeated:
        if name in SINGLE_VALUED:
            raise InvalidHeader(f"{_title(name)} was sent {seen[name]} times; it takes one value, send it once")
    if not repeated:
        return list(raw)
    folded: list[tuple[bytes, bytes]] = []
    joined: dict[bytes, list[bytes]] = {}
    for name, value in raw:
        lower = name.lower()
        if lower in LIST_VALUED:
            if lower not in joined:
                joined[lower] = []
                folded.append((lower, b""))  # placeholder at the first line's position
            if value.strip(b" \t"):
                joined[lower].append(value.strip(b" \t"))
        else:
            folded.append((name, value))
    return [(name, b",".join(joined[name]) if name in joined else value) for name, value in folded]


# RFC 9110, 7.2: Host = uri-host [ ":" port ], uri-host = IP-literal / IPv4address / reg-name (RFC 3986).
_HOST = re.compile(r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9\-._~!$&'()*+,;=%]*)(:[0-9]{0,5})?")


def check_host(value: str) -> None:
    """RFC 9112, 3.2: "A server MUST respond with a 400 (Bad Request) status code to any HTTP/1.1 request
    message that ... contains ... a Host header field with an invalid field value." We build Location from it."""
    if not _HOST.fullmatch(value):
        raise InvalidHeader(f"invalid Host header {value[:60]!r}")


def _title(name: bytes) -> str:
    return "-".join(part.capitalize() for part in name.decode("latin-1").split("-"))


# "Upload-Offset ... MUST be a non-negative integer" / "Upload-Length ... MUST be a non-negative integer".
# We accept plain ASCII digits only: no sign, no spaces, no "1e3", no unicode digits that int() would take.
_DIGITS = re.compile(r"[0-9]{1,19}")


def parse_non_negative_int(name: str, value: str) -> int:
    value = value.strip(" \t")  # HTTP's optional whitespace only (RFC 9110, 5.6.3), not str.strip()'s
    if not _DIGITS.fullmatch(value):
        raise InvalidHeader(f"{name} must be a non-negative integer, got {value[:40]!r}")
    number = int(value)
    if number > MAX_INT64:
        raise InvalidHeader(f"{name} is too large")
    return number


def parse_offset(value: str | None) -> int:
    if value is None:
        raise InvalidHeader("Upload-Offset header is required")
    return parse_non_negative_int("Upload-Offset", value)


def parse_length(value: str | None) -> int | None:
    return None if value is None else parse_non_negative_int("Upload-Length", value)


def parse_defer_length(value: str | None) -> bool:
    """creation-defer-length: "The value MUST be 1. If the length of the upload is not deferred, this
    header MUST be omitted." """
    if value is None:
        return False
    if value.strip() != "1":
        raise InvalidHeader("Upload-Defer-Length must be 1")
    return True


@dataclass(frozen=True, slots=True)
class DeclaredLength:
    """The length a creation request declares: a number, or deferred (None)."""

    length: int | None

    @property
    def deferred(self) -> bool:
        return self.length is None


def parse_creation_length(length: str | None, defer: str | None, *, is_final: bool) -> DeclaredLength:
    """creation: "The Client MUST send Upload-Length or Upload-Defer-Length: 1"; a final upload of the
    concatenation extension sends neither (its length is the sum of its parts)."""
    deferred = parse_defer_length(defer)
    parsed = parse_length(length)
    if is_final:
        if parsed is not None or deferred:
            raise InvalidConcat("a final upload must not carry Upload-Length or Upload-Defer-Length")
        return DeclaredLength(None)
    if parsed is not None and deferred:
        raise InvalidHeader("send Upload-Length or Upload-Defer-Length, not both")
    if parsed is None and not deferred:
        raise LengthRequired()
    return DeclaredLength(parsed)


def parse_content_encoding(value: str | None, supported: tuple[str, ...]) -> str | None:
    """The one content coding of a request body (RFC 9110 8.4), or None for none / ``identity``. Several
    codings, or one not in ``supported``, are refused with 415 naming what is taken (RFC 7694)."""
    if value is None:
        return None
    codings = [c.strip().lower() for c in value.split(",") if c.strip()]
    codings = [c for c in codings if c != "identity"]
    if not codings:
        return None
    if len(codings) == 1 and codings[0] in supported:
        return codings[0]
    raise UnsupportedContentEncoding(
        f"Content-Encoding {value.strip()!r} is not taken; this server decodes {', '.join(supported)}",
        headers={"Accept-Encoding": ", ".join(supported)},
    )


def format_expires(moment: datetime) -> str:
    """expiration: "The value of the Upload-Expires header MUST be in RFC 9110 datetime format"
    (IMF-fixdate, e.g. ``Wed, 25 Jun 2014 16:00:00 GMT``)."""
    return format_datetime(moment.astimezone(UTC), usegmt=True)


# --- checksum ---------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class ChecksumHeader:
    algorithm: str
    digest: bytes


def parse_checksum(value: str | None) -> ChecksumHeader | None:
    """checksum: "Upload-Checksum ... MUST consist of the name of the used checksum algorithm and the
    Base64 encoded checksum separated by a space." """
    if value is None:
        return None
    parts = value.strip().split(" ")
    if len(parts) != 2 or not parts[0] or not parts[1]:
        raise InvalidHeader("Upload-Checksum must be '<algorithm> <base64 digest>'")
    try:
        digest = base64.b64decode(parts[1], validate=True)
    except (binascii.Error, ValueError):
        raise InvalidHeader("Upload-Checksum digest is not valid base64") from None
    return ChecksumHeader(parts[0].lower(), digest)


def parse_declared_digest(value: bytes | None) -> ChecksumHeader | None:
    """Whole-file verification (ours): the ``checksum`` metadata value, ``<algorithm> <base64 digest>``
    in the Upload-Checksum format, declares the digest of the complete upload."""
    if value is None:
        return None
    try:
        return parse_checksum(value.decode("ascii"))
    except (UnicodeDecodeError, InvalidHeader):
        raise InvalidMetadata("the checksum metadata must be '<algorithm> <base64 digest>'") from None


def declared_digest(metadata_header: str | None) -> ChecksumHeader | None:
    """The whole-file digest an upload's ``Upload-Metadata`` declares, if any."""
    return parse_declared_digest(parse_metadata(metadata_header).get(DIGEST_METADATA_KEY))


# --- concatenation ----------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class ConcatHeader:
    """``Upload-Concat: partial`` or ``Upload-Concat: final;<url> <url> ...``."""

    partial: bool
    parts: tuple[str, ...] = ()

    @property
    def final(self) -> bool:
        return not self.partial


def parse_concat(value: str | None) -> ConcatHeader | None:
    if value is None:
        return None
    value = value.strip()
    if value == "partial":
        return ConcatHeader(partial=True)
    if value.startswith("final;"):
        urls = tuple(url for url in value[len("final;") :].split(" ") if url)
        if not urls:
            raise InvalidConcat("Upload-Concat: final must name at least one partial upload")
        return ConcatHeader(partial=False, parts=urls)
    raise InvalidConcat("Upload-Concat must be 'partial' or 'final;<url> <url> ...'")
