"""Core protocol: PATCH (https://tus.io/protocols/resumable-upload#patch)."""

from __future__ import annotations

import time

from conformance import rawhttp
from conformance.context import OCTET, TUS_VERSION, Context, describe
from conformance.runner import check


@check("core.patch-content-type")
def patch_content_type(ctx: Context) -> str:
    """PATCH without `Content-Type: application/offset+octet-stream` gets 415.

    "All PATCH requests MUST use Content-Type: application/offset+octet-stream, otherwise the server SHOULD
    return a 415 Unsupported Media Type status."
    """
    url = ctx.create(10)
    problems: list[str] = []
    for content_type in ("application/octet-stream", "text/plain", None):
        response = ctx.patch(url, 0, b"abc", content_type=content_type)
        if response.status_code != 415:
            label = f"Content-Type {content_type}" if content_type else "no Content-Type"
            problems.append(f"{label} -> {describe(response)}")
    if problems:
        raise ctx.fail("expected 415: " + "; ".join(problems))
    ctx.expect_offset(url, 0, "PATCH requests with the wrong Content-Type")
    return "415 for application/octet-stream, text/plain and no Content-Type; offset unchanged"


@check("core.patch-offset-409")
def patch_offset_409(ctx: Context) -> str:
    """PATCH whose `Upload-Offset` differs from the upload's offset gets 409; the upload is untouched.

    "If the offsets do not match, the Server MUST respond with the 409 Conflict status without modifying the
    upload resource."
    """
    url = ctx.create(10)
    ctx.write(url, 0, b"abc")
    for wrong in (5, 0, 2):
        response = ctx.patch(url, wrong, b"de")
        if response.status_code != 409:
            raise ctx.fail(f"PATCH at Upload-Offset {wrong} while the offset is 3 answered {describe(response)}")
        ctx.expect_offset(url, 3, f"a PATCH at the wrong offset {wrong}")
    return "409 for offsets 5 (ahead), 0 and 2 (behind) of 3; offset unchanged"


@check("core.patch-204")
def patch_204(ctx: Context) -> str:
    """A successful PATCH answers 204 with the new `Upload-Offset`.

    "The Server MUST acknowledge successful PATCH requests with the 204 No Content status. It MUST include the
    Upload-Offset header containing the new offset."
    """
    url = ctx.create(10)
    for offset, body in ((0, b"0123"), (4, b"456789")):
        response = ctx.patch(url, offset, body)
        expected = str(offset + len(body))
        if response.status_code != 204:
            raise ctx.fail(f"PATCH of {len(body)} bytes at offset {offset} answered {describe(response)}, expected 204")
        if response.headers.get("Upload-Offset") != expected:
            raise ctx.fail(f"204 with Upload-Offset {response.headers.get('Upload-Offset')!r}, expected {expected}")
    ctx.expect_offset(url, 10, "two PATCH requests of 4 and 6 bytes")
    return "204 with Upload-Offset 4, then 10; HEAD agrees"


@check("core.patch-missing")
def patch_missing(ctx: Context) -> str:
    """PATCH of an unknown upload gets 404.

    "If the server receives a PATCH request against a non-existent resource it SHOULD return a 404 Not Found
    status."
    """
    response = ctx.patch(ctx.missing_url(), 0, b"abc")
    if response.status_code != 404:
        raise ctx.fail(f"PATCH of a missing upload answered {describe(response)}, expected 404")
    return "404"


@check("core.patch-partial-body")
def patch_partial_body(ctx: Context) -> str:
    """The bytes of a PATCH whose body was cut off are kept as far as received, and HEAD reports them.

    "The Server SHOULD always attempt to store as much of the received data as possible." A SHOULD, but a server
    that keeps nothing fails this check: a client on a flaky network would then never make progress.
    """
    url = ctx.create(100)
    target = rawhttp.Target.from_url(url)
    body = bytes(range(100))
    headers = {
        **ctx.extra_headers,
        "Tus-Resumable": TUS_VERSION,
        "Content-Type": OCTET,
        "Upload-Offset": "0",
        "Content-Length": "100",
    }
    with rawhttp.connect(target, ctx.timeout_s) as sock:
        sock.sendall(rawhttp.request_head("PATCH", target, headers) + body[:40])
        time.sleep(0.5)  # let the server read the 40 bytes before the connection goes away
    offset = ctx.poll_offset(url, 40, timeout_s=5.0)
    if offset == 0:
        raise ctx.fail(
            "a PATCH declaring Content-Length 100 was cut off after 40 bytes, and 5 s later HEAD still reports "
            "Upload-Offset 0: the received bytes were discarded (the spec says the server SHOULD store as much of "
            "the received data as possible)"
        )
    if offset != 40:
        raise ctx.fail(f"after a PATCH cut off after 40 bytes, HEAD reports Upload-Offset {offset!r}, expected 40")
    response = ctx.patch(url, 40, body[40:])
    if response.status_code != 204 or response.headers.get("Upload-Offset") != "100":
        raise ctx.fail(f"resuming at offset 40 with the other 60 bytes answered {describe(response)}")
    return "kept 40 of a cut-off 100-byte PATCH; resuming at 40 completed the upload"


@check("core.patch-beyond-length")
def patch_beyond_length(ctx: Context) -> str:
    """Bytes beyond `Upload-Length` are never stored: the PATCH is rejected (ours: 413), the offset unchanged.

    `Upload-Length` "indicates the size of the entire upload in bytes", so nothing past it belongs to the upload.
    The spec names no status; we accept 400, 409 or 413 and prefer 413 (as tusd does).
    """
    url = ctx.create(10)
    statuses: list[int] = []
    for offset, size in ((0, 15), (8, 5)):
        if offset:
            ctx.write(url, 0, b"x" * offset)
        response = ctx.patch(url, offset, b"y" * size)
        if response.status_code not in (400, 409, 413):
            raise ctx.fail(
                f"PATCH of {size} bytes at offset {offset} of a 10-byte upload answered {describe(response)}, "
                "expected 413 (or 400/409)"
            )
        statuses.append(response.status_code)
        ctx.expect_offset(url, offset, f"a PATCH of {size} bytes at offset {offset} past Upload-Length 10")
    note = "" if set(statuses) == {413} else " (413 preferred)"
    return f"rejected with {', '.join(map(str, statuses))}{note}; offset unchanged"
