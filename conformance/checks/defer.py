"""Extension creation-defer-length (https://tus.io/protocols/resumable-upload#upload-defer-length)."""

from __future__ import annotations

from conformance.context import Context, describe
from conformance.runner import check

EXTENSION = "creation-defer-length"
DEFERRED = {"Upload-Defer-Length": "1"}


@check("defer.create", extension=EXTENSION)
def defer_create(ctx: Context) -> str:
    """`Upload-Defer-Length: 1` creates an upload of unknown length; any other value is 400.

    "Its value MUST be 1." "If the Upload-Defer-Length header contains any other value than 1 the server should
    return a 400 Bad Request status."
    """
    ctx.create(headers=DEFERRED)
    problems = []
    for value in ("0", "2", "true", "01"):
        response = ctx.post({"Upload-Defer-Length": value})
        if response.status_code != 400:
            problems.append(f"Upload-Defer-Length {value!r} -> {describe(response)}")
    if problems:
        raise ctx.fail("expected 400: " + "; ".join(problems))
    return "201 for Upload-Defer-Length 1; 400 for 0, 2, true, 01"


@check("defer.head", extension=EXTENSION)
def defer_head(ctx: Context) -> str:
    """While the length is unknown, HEAD answers `Upload-Defer-Length: 1` and no `Upload-Length`.

    "As long as the length of the upload is not known, the Server MUST set Upload-Defer-Length: 1 in all
    responses to HEAD requests." Bytes may arrive before that: "the Client MUST set the Upload-Length header in
    the next PATCH request, once the length is known."
    """
    url = ctx.create(headers=DEFERRED)
    for written in (0, 3):
        if written:
            response = ctx.patch(url, 0, b"abc")
            if response.status_code != 204:
                raise ctx.fail(
                    f"a PATCH of 3 bytes without Upload-Length (the length is still unknown) answered "
                    f"{describe(response)}; the client sends Upload-Length only 'once the length is known'"
                )
        head = ctx.head(url)
        state = f"after {written} bytes"
        if head.headers.get("Upload-Defer-Length") != "1":
            raise ctx.fail(f"{state}: HEAD has Upload-Defer-Length {head.headers.get('Upload-Defer-Length')!r}")
        if "Upload-Length" in head.headers:
            raise ctx.fail(f"{state}: HEAD has Upload-Length {head.headers['Upload-Length']!r} for a deferred length")
        if head.headers.get("Upload-Offset") != str(written):
            raise ctx.fail(f"{state}: HEAD has Upload-Offset {head.headers.get('Upload-Offset')!r}")
    return "Upload-Defer-Length: 1 without Upload-Length, before and after a PATCH that left the length open"


@check("defer.set-once", extension=EXTENSION)
def defer_set_once(ctx: Context) -> str:
    """A later PATCH sets `Upload-Length`; once set it cannot change (400 on a different value).

    "the Client MUST set the Upload-Length header in the next PATCH request, once the length is known. Once set
    the length MUST NOT be changed." And: "If the length of an upload is not deferred, this header
    [Upload-Defer-Length] MUST be omitted."
    """
    url = ctx.create(headers=DEFERRED)
    ctx.write(url, 0, b"abc", headers={"Upload-Length": "10"})
    head = ctx.head(url)
    if head.headers.get("Upload-Length") != "10":
        raise ctx.fail(f"after a PATCH with Upload-Length 10, HEAD has {head.headers.get('Upload-Length')!r}")
    if "Upload-Defer-Length" in head.headers:
        raise ctx.fail("HEAD still has Upload-Defer-Length once the length is known")
    changed = ctx.patch(url, 3, b"de", headers={"Upload-Length": "12"})
    if changed.status_code != 400:
        raise ctx.fail(f"PATCH changing Upload-Length from 10 to 12 answered {describe(changed)}, expected 400")
    ctx.expect_offset(url, 3, "a PATCH that tried to change the length")
    if ctx.head(url).headers.get("Upload-Length") != "10":
        raise ctx.fail("the length changed after the rejected PATCH")
    ctx.write(url, 3, b"defghij")
    return "length set by the first PATCH; changing it: 400; the upload completed at 10"
