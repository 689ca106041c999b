"""Extensions checksum and checksum-trailer (https://tus.io/protocols/resumable-upload#checksum)."""

from __future__ import annotations

import base64
import hashlib

from conformance import rawhttp
from conformance.context import OCTET, TUS_VERSION, Context, describe
from conformance.runner import check

EXTENSION = "checksum"
# Tus-Checksum-Algorithm names we can compute (hashlib uses the same names).
COMPUTABLE = ("sha1", "md5", "sha224", "sha256", "sha384", "sha512")


def checksum(algorithm: str, data: bytes) -> str:
    """``Upload-Checksum`` value: "the name of the used checksum algorithm and the Base64 encoded checksum"."""
    digest = hashlib.new(algorithm, data).digest()
    return f"{algorithm} {base64.b64encode(digest).decode('ascii')}"


@check("sum.advertise", extension=EXTENSION)
def advertise(ctx: Context) -> str:
    """OPTIONS carries `Tus-Checksum-Algorithm` (comma list, lower case); `sha1` is always supported.

    "The Tus-Checksum-Algorithm header MUST be included in the response to an OPTIONS request." "The Server MUST
    support at least the SHA1 checksum algorithm identified by sha1. The names of the checksum algorithms MUST only
    consist of ASCII characters with the modification that uppercase characters are excluded."
    """
    raw = ctx.info.headers.get("Tus-Checksum-Algorithm")
    if raw is None:
        raise ctx.fail("checksum is advertised, but OPTIONS has no Tus-Checksum-Algorithm")
    names = [name.strip() for name in raw.split(",") if name.strip()]
    bad = [name for name in names if not name.isascii() or name != name.lower() or " " in name]
    if bad:
        raise ctx.fail(f"algorithm names must be lower-case ASCII: {bad}")
    if "sha1" not in names:
        raise ctx.fail(f"Tus-Checksum-Algorithm {raw!r} does not list sha1")
    return f"Tus-Checksum-Algorithm: {raw}"


@check("sum.ok", extension=EXTENSION)
def checksum_ok(ctx: Context) -> str:
    """A PATCH with a correct `Upload-Checksum: <algo> <base64 digest>` is accepted (each advertised algorithm).

    "Once the entire request has been received, the Server MUST verify the uploaded chunk against the provided
    checksum [...] 204 No Content if the checksums match and the processing of the data succeeded."
    """
    algorithms = [name for name in ctx.info.checksum_algorithms if name in COMPUTABLE] or ["sha1"]
    url = ctx.create(4 * len(algorithms))
    for index, algorithm in enumerate(algorithms):
        chunk = f"c{index:03d}".encode()
        ctx.write(url, 4 * index, chunk, headers={"Upload-Checksum": checksum(algorithm, chunk)})
    others = sorted(set(ctx.info.checksum_algorithms) - set(algorithms))
    return f"204 for correct {', '.join(algorithms)} checksums" + (
        f" (not tried: {', '.join(others)})" if others else ""
    )


@check("sum.460", extension=EXTENSION)
def checksum_mismatch(ctx: Context) -> str:
    """A wrong digest gets 460; the chunk is not written and the offset does not move.

    "460 Checksum Mismatch if the checksums mismatch [...] the uploaded chunk MUST be discarded, and the upload
    and its offset MUST NOT be updated."
    """
    url = ctx.create(6)
    ctx.write(url, 0, b"abc")
    response = ctx.patch(url, 3, b"def", headers={"Upload-Checksum": checksum("sha1", b"xyz")})
    if response.status_code != 460:
        raise ctx.fail(f"PATCH with a wrong sha1 answered {describe(response)}, expected 460")
    ctx.expect_offset(url, 3, "a PATCH with a wrong checksum")
    ctx.write(url, 3, b"def", headers={"Upload-Checksum": checksum("sha1", b"def")})
    return "460; offset stayed 3; the same chunk with the right checksum was then accepted"


@check("sum.unsupported-400", extension=EXTENSION)
def checksum_unsupported(ctx: Context) -> str:
    """An unsupported algorithm (or a malformed `Upload-Checksum`) gets 400; nothing is written.

    "400 Bad Request if the checksum algorithm is not supported by the server [...] the uploaded chunk MUST be
    discarded, and the upload and its offset MUST NOT be updated."
    """
    url = ctx.create(6)
    digest = checksum("sha1", b"abc").split()[1]
    problems = []
    for value in (f"nosuchalgo {digest}", "sha1", f"sha1:{digest}"):
        response = ctx.patch(url, 0, b"abc", headers={"Upload-Checksum": value})
        if response.status_code != 400:
            problems.append(f"Upload-Checksum {value!r} -> {describe(response)}")
    if problems:
        raise ctx.fail("expected 400: " + "; ".join(problems))
    ctx.expect_offset(url, 0, "PATCH requests with unsupported or malformed checksums")
    return "400 for an unknown algorithm, a missing digest and a missing separator; offset unchanged"


@check("sum.trailer", extension="checksum-trailer")
def checksum_trailer(ctx: Context) -> str:
    """`Upload-Checksum` as an HTTP trailer of a chunked body is verified like the header.

    "If the hash cannot be calculated at the beginning of the upload, it MAY be included as a trailer. If the
    Server can handle trailers, this behavior MUST be announced by adding checksum-trailer to the Tus-Extension
    header."
    """
    url = ctx.create(6)
    target = rawhttp.Target.from_url(url)
    seen = []
    for offset, body, claimed, expected in ((0, b"abc", b"xyz", 460), (0, b"abc", b"abc", 204)):
        headers = {
            **ctx.extra_headers,
            "Tus-Resumable": TUS_VERSION,
            "Content-Type": OCTET,
            "Upload-Offset": str(offset),
            "Transfer-Encoding": "chunked",
            "Trailer": "Upload-Checksum",
            "Connection": "close",
        }
        payload = rawhttp.chunked(body, {"Upload-Checksum": checksum("sha1", claimed)})
        with rawhttp.connect(target, ctx.timeout_s) as sock:
            sock.sendall(rawhttp.request_head("PATCH", target, headers) + payload)
            response = rawhttp.read_response(sock)
        kind = "wrong" if claimed != body else "right"
        if response.status != expected:
            raise ctx.fail(f"chunked PATCH with a {kind} sha1 trailer answered {response.status}, expected {expected}")
        seen.append(f"{kind}: {response.status}")
        ctx.expect_offset(url, 3 if expected == 204 else 0, f"a chunked PATCH with a {kind} checksum trailer")
    return "trailer checked: " + ", ".join(seen)
