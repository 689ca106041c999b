"""Pure helpers that read and write tus header values. No I/O; every function raises ``ValueError`` on
input its grammar does not allow, so checks can turn that into a precise FAIL reason."""

from __future__ import annotations

import base64
import binascii
import random
import re
import string
from collections.abc import Mapping
from datetime import datetime
from email.utils import parsedate_to_datetime
from urllib.parse import unquote, urlsplit, urlunsplit

# "Upload-Offset ... MUST be a non-negative integer": plain ASCII digits, nothing else.
_DIGITS = re.compile(r"[0-9]+")

# RFC 9110 section 5.6.7:
#   IMF-fixdate = day-name "," SP date1 SP time-of-day SP GMT
#   date1 = day SP month SP year ; e.g., 02 Jun 1982
_DAY_NAMES = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_IMF_FIXDATE = re.compile(
    rf"(?P<day_name>{'|'.join(_DAY_NAMES)}), (?P<day>[0-9]{{2}}) (?P<month>{'|'.join(_MONTHS)}) [0-9]{{4}} "
    r"(?:[01][0-9]|2[0-3]):[0-5][0-9]:(?:[0-5][0-9]|60) GMT"
)

# RFC 9110 token characters, for metadata keys and extension names.
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")


def parse_non_negative_int(value: str | None) -> int | None:
    """``None`` stays ``None``; otherwise the value must be plain ASCII digits."""
    if value is None:
        return None
    if not _DIGITS.fullmatch(value):
        raise ValueError(f"not a non-negative integer: {value!r}")
    return int(value)


def parse_list(value: str | None) -> list[str]:
    """A comma-separated header list (``Tus-Version``, ``Tus-Extension``, ...), items trimmed, empties dropped."""
    if value is None:
        return []
    return [item.strip() for item in value.split(",") if item.strip()]


def is_token(value: str) -> bool:
    return _TOKEN.fullmatch(value) is not None


def parse_imf_fixdate(value: str) -> datetime:
    """The moment an RFC 9110 IMF-fixdate (``Wed, 25 Jun 2014 16:00:00 GMT``) names, as an aware UTC datetime.

    Stricter than :func:`email.utils.parsedate_to_datetime`: the obsolete RFC 850 and asctime forms, numeric
    zones, missing leading zeros and a day name that does not match the date are all rejected.
    """
    match = _IMF_FIXDATE.fullmatch(value)
    if match is None:
        raise ValueError(f"not an IMF-fixdate: {value!r}")
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"not a valid date: {value!r}") from exc
    if _DAY_NAMES[moment.weekday()] != match["day_name"]:
        raise ValueError(f"{value!r}: the day name does not match the date")
    return moment


def encode_metadata(pairs: Mapping[str, bytes | None]) -> str:
    """``Upload-Metadata`` from key -> value; ``None`` leaves the value (and its separating space) out."""
    items = []
    for key, value in pairs.items():
        items.append(key if value is None else f"{key} {base64.b64encode(value).decode('ascii')}")
    return ",".join(items)


def decode_metadata(value: str) -> dict[str, bytes]:
    """Parse ``Upload-Metadata`` strictly: "comma-separated key-value pairs. The key and value MUST be separated
    by a space. The key MUST NOT contain spaces and commas and MUST NOT be empty. [...] the value MUST be
    Base64 encoded. All keys MUST be unique. The value MAY be empty." A missing value decodes to ``b""``."""
    result: dict[str, bytes] = {}
    for raw_item in value.split(","):
        item = raw_item.strip()
        key, _, encoded = item.partition(" ")
        if not key:
            raise ValueError(f"empty key in {value!r}")
        if " " in encoded:
            raise ValueError(f"key {key!r}: the value contains a space")
        if key in result:
            raise ValueError(f"duplicate key {key!r}")
        try:
            result[key] = base64.b64decode(encoded, validate=True)
        except binascii.Error as exc:
            raise ValueError(f"key {key!r}: value {encoded!r} is not base64") from exc
    return result


def parse_concat_final(value: str) -> list[str]:
    """The URLs of ``Upload-Concat: final;<url> <url> ...``."""
    kind, sep, rest = value.partition(";")
    if kind.strip() != "final" or not sep:
        raise ValueError(f"not a final Upload-Concat value: {value!r}")
    urls = rest.split()
    if not urls:
        raise ValueError(f"no partial upload URLs in {value!r}")
    return urls


def cache_directives(value: str | None) -> set[str]:
    """Directive names of a ``Cache-Control`` value, lower-cased (``no-store, max-age=0`` -> no-store, max-age)."""
    return {item.split("=", 1)[0].strip().lower() for item in parse_list(value)}


def header_names(value: str | None) -> set[str]:
    """Lower-cased names of a header-name list (``Access-Control-Expose-Headers`` and the like)."""
    return {item.lower() for item in parse_list(value)}


def disposition_filenames(value: str) -> list[str]:
    """The file names a ``Content-Disposition`` value carries: ``filename="..."`` (quoted-string unescaped),
    ``filename=token`` and ``filename*=charset'lang'percent-encoded``."""
    names: list[str] = []
    pattern = re.compile(r';\s*(filename\*?)\s*=\s*("(?:[^"\\]|\\.)*"|[^;]*)', re.IGNORECASE)
    for match in pattern.finditer(value):
        param, raw = match.group(1).lower(), match.group(2).strip()
        if raw.startswith('"'):
            names.append(re.sub(r"\\(.)", r"\1", raw[1:-1]))
        elif param == "filename*":
            charset, _, rest = raw.partition("'")
            _, _, encoded = rest.partition("'")
            names.append(unquote(encoded, encoding=charset or "utf-8", errors="replace"))
        else:
            names.append(raw)
    return names


def missing_variant(url: str, rng: random.Random) -> str:
    """A URL shaped like ``url`` whose last path segment is replaced by random characters of the same kinds
    (hex digits stay hex, letters stay letters, separators stay put), so that servers validating the id format
    still see a well-formed id, but one that names no upload."""
    parts = urlsplit(url)
    head, sep, last = parts.path.rstrip("/").rpartition("/")
    if not last:
        last = "0" * 32
    swapped = "".join(_same_kind(char, rng) for char in last)
    path = f"{head}{sep}{swapped}"
    return urlunsplit((parts.scheme, parts.netloc, path, parts.query, ""))


def _same_kind(char: str, rng: random.Random) -> str:
    if char in string.digits or char in "abcdef":
        return rng.choice(string.digits + "abcdef")
    if char in "ABCDEF":
        return rng.choice(string.digits + "ABCDEF")
    if char in string.ascii_lowercase:
        return rng.choice(string.ascii_lowercase)
    if char in string.ascii_uppercase:
        return rng.choice(string.ascii_uppercase)
    return char
