"""Pre-signed creation URLs: a server started with a signing key accepts new uploads only at URLs signed
with that key, until they expire and up to the size they allow.

A signed URL is the creation endpoint with ``expires`` (Unix seconds), optionally ``max_size`` (bytes per
upload created there), and ``signature``: the hex HMAC-SHA256, under the key, of
``tusedge-upload-v1\\n<path>\\n<expires>\\n<max_size or empty>``. Whoever holds the key (an application
backend) hands such URLs to clients; the clients need no secret. Upload URLs themselves are not signed:
their ids are 128 random bits, so knowing one is the capability to resume, read or delete that upload.

Pure: no clock and no I/O here; ``now`` is passed in.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlencode, urlsplit, urlunsplit

from tusedge.errors import SignatureExpired, SignatureInvalid, SignatureRequired

VERSION = "tusedge-upload-v1"


@dataclass(frozen=True)
class Grant:
    """What a valid signed URL allows."""

    expires: int
    max_size: int | None


def signature(key: bytes, path: str, expires: int, max_size: int | None) -> str:
    message = f"{VERSION}\n{path}\n{expires}\n{'' if max_size is None else max_size}".encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def sign_url(url: str, key: bytes, expires: int, max_size: int | None = None) -> str:
    """``url`` (the creation endpoint) with the query that signs it."""
    parts = urlsplit(url)
    query = {"expires": str(expires)}
    if max_size is not None:
        query["max_size"] = str(max_size)
    query["signature"] = signature(key, parts.path, expires, max_size)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(query), ""))


def verify(key: bytes, path: str, query: Mapping[str, str], now: float) -> Grant:
    """The grant of a signed request for ``path``, or the reason it is refused."""
    if "signature" not in query:
        raise SignatureRequired()
    try:
        expires = int(query.get("expires", ""))
        max_size = int(query["max_size"]) if "max_size" in query else None
    except ValueError:
        raise SignatureInvalid("the signed URL's expires and max_size must be integers") from None
    if max_size is not None and max_size < 0:
        raise SignatureInvalid("the signed URL's max_size must not be negative")
    expected = signature(key, path, expires, max_size)
    # As bytes: compare_digest raises TypeError on a str that is not ASCII (``signature=%C3%A9``).
    if not hmac.compare_digest(expected.encode(), query["signature"].encode("utf-8", "surrogatepass")):
        raise SignatureInvalid()
    if now >= expires:
        raise SignatureExpired(f"the signed URL expired {int(now - expires)} s ago")
    return Grant(expires, max_size)
