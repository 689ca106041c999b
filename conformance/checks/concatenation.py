"""Extensions concatenation and concatenation-unfinished (https://tus.io/protocols/resumable-upload#concatenation)."""

from __future__ import annotations

import time

import httpx

from conformance.context import Context, describe
from conformance.parsing import decode_metadata, encode_metadata, parse_concat_final
from conformance.runner import check

EXTENSION = "concatenation"
UNFINISHED = "concatenation-unfinished"
PARTS = (b"hello", b" world")
WHOLE = b"".join(PARTS)


def partial(ctx: Context, data: bytes, written: int | None = None, metadata: str | None = None) -> str:
    """A partial upload of ``len(data)`` bytes, the first ``written`` of them (default: all) uploaded."""
    headers = {"Upload-Concat": "partial"} | ({"Upload-Metadata": metadata} if metadata else {})
    url = ctx.create(len(data), headers=headers)
    count = len(data) if written is None else written
    if count:
        ctx.write(url, 0, data[:count])
    return url


def concat_value(urls: list[str], relative: bool = False) -> str:
    """``final;<url> <url>``; ``relative`` uses path-absolute references, as the spec's example does."""
    refs = [path_of(url) if relative else url for url in urls]
    return "final;" + " ".join(refs)


def path_of(url: str) -> str:
    return httpx.URL(url).raw_path.decode("ascii")


def final(ctx: Context, urls: list[str], relative: bool = False, metadata: str | None = None) -> httpx.Response:
    headers = {"Upload-Concat": concat_value(urls, relative)}
    if metadata:
        headers["Upload-Metadata"] = metadata
    return ctx.post(headers)


def create_final(ctx: Context, urls: list[str], relative: bool = False, metadata: str | None = None) -> str:
    response = final(ctx, urls, relative, metadata)
    if response.status_code != 201 or not response.headers.get("Location"):
        value = concat_value(urls, relative)
        raise ctx.fail(f"POST with Upload-Concat {value!r} answered {describe(response)}, expected 201 with Location")
    return ctx.resolve(response.headers["Location"])


def wait_complete(ctx: Context, url: str, length: int, timeout_s: float) -> httpx.Response:
    """HEAD until ``Upload-Offset`` = ``Upload-Length`` = ``length``; FAIL when that does not happen in time."""
    deadline = time.monotonic() + timeout_s
    while True:
        head = ctx.head(url)
        offset, total = head.headers.get("Upload-Offset"), head.headers.get("Upload-Length")
        if offset == total == str(length):
            return head
        if time.monotonic() >= deadline:
            raise ctx.fail(
                f"HEAD of the final upload: {describe(head)}, Upload-Offset {offset!r}, Upload-Length {total!r}; "
                f"expected both to be {length} (waited {timeout_s:.0f} s)"
            )
        time.sleep(0.1)


def content(ctx: Context, url: str) -> bytes | None:
    """The upload's bytes if the server serves GET (not part of tus), else None."""
    response = ctx.get(url)
    return response.content if response.status_code == 200 else None


def verify_content(ctx: Context, url: str, expected: bytes) -> str:
    body = content(ctx, url)
    if body is None:
        return "content not verified (no GET)"
    if body != expected:
        raise ctx.fail(f"GET of the final upload returned {body!r}, expected {expected!r} (the partials in order)")
    return f"GET returns {expected!r}"


@check("concat.partial", extension=EXTENSION)
def concat_partial(ctx: Context) -> str:
    """POST with `Upload-Concat: partial` creates a partial upload; HEAD shows it and `Upload-Offset`.

    "The response to a HEAD request for a partial upload MUST contain the Upload-Offset header." "Response to HEAD
    request against partial or final upload MUST include the Upload-Concat header and its value as received in the
    upload creation request."
    """
    url = partial(ctx, PARTS[0], written=0)
    for written in (0, len(PARTS[0])):
        if written:
            ctx.write(url, 0, PARTS[0])
        head = ctx.head(url)
        if head.headers.get("Upload-Concat") != "partial":
            raise ctx.fail(f"HEAD of a partial upload has Upload-Concat {head.headers.get('Upload-Concat')!r}")
        if head.headers.get("Upload-Offset") != str(written):
            raise ctx.fail(f"HEAD of a partial upload has Upload-Offset {head.headers.get('Upload-Offset')!r}")
    return "HEAD shows Upload-Concat: partial and Upload-Offset 0, then 5"


@check("concat.final", extension=EXTENSION)
def concat_final(ctx: Context) -> str:
    """`Upload-Concat: final;<url> <url>` (absolute or relative URLs) creates the final upload: the partials in order.

    "The value MUST be final followed by a semicolon and a space-separated list of the partial upload URLs [...]
    The partial uploads MUST be concatenated as per the order specified in the list." "The partial uploads URLs MAY
    be absolute or relative". "the partial uploads' metadata SHALL NOT be transferred to the new final upload."
    """
    notes = []
    for relative in (False, True):
        parts = [partial(ctx, PARTS[0], metadata=encode_metadata({"part": b"1"})), partial(ctx, PARTS[1])]
        url = create_final(ctx, parts, relative, metadata=encode_metadata({"name": b"final"}))
        head = wait_complete(ctx, url, len(WHOLE), timeout_s=5.0)
        if "Upload-Metadata" not in head.headers:
            raise ctx.fail("HEAD of the final upload has no Upload-Metadata, though the final was created with it")
        try:
            meta = decode_metadata(head.headers["Upload-Metadata"])
        except ValueError as exc:
            raise ctx.fail(f"HEAD of the final upload: bad Upload-Metadata: {exc}") from None
        if meta != {"name": b"final"}:
            raise ctx.fail(f"final upload metadata is {meta}, expected only the final's own {{'name': b'final'}}")
        notes.append(f"{'relative' if relative else 'absolute'} URLs: 201, {verify_content(ctx, url, WHOLE)}")
    return "; ".join(notes)


@check("concat.final-head", extension=EXTENSION)
def concat_final_head(ctx: Context) -> str:
    """HEAD of a final: `Upload-Concat: final;...`, `Upload-Length` = sum = `Upload-Offset`; unfinished: no offset.

    "After successful concatenation, the Upload-Offset and Upload-Length MUST be set and their values MUST be
    equal." "The response to a HEAD request for a final upload SHOULD NOT contain the Upload-Offset header unless
    the concatenation has been successfully finished." "The Upload-Length header MUST be included if the length of
    the final resource can be calculated at the time of the request."
    """
    parts = [partial(ctx, PARTS[0]), partial(ctx, PARTS[1])]
    url = create_final(ctx, parts)
    head = wait_complete(ctx, url, len(WHOLE), timeout_s=5.0)
    value = head.headers.get("Upload-Concat") or ""
    try:
        listed = [path_of(ctx.resolve(ref)) for ref in parse_concat_final(value)]
    except ValueError as exc:
        raise ctx.fail(f"HEAD of the final upload: {exc}") from None
    if listed != [path_of(part) for part in parts]:
        raise ctx.fail(f"HEAD of the final upload has Upload-Concat {value!r}, expected the partials {parts}")
    if not ctx.has(UNFINISHED):
        return "Upload-Concat lists the partials; Upload-Length = Upload-Offset = 11"
    pending = [partial(ctx, PARTS[0], written=2), partial(ctx, PARTS[1])]
    early = ctx.head(create_final(ctx, pending))
    if "Upload-Offset" in early.headers:
        raise ctx.fail(
            f"HEAD of a final upload whose partials are unfinished has Upload-Offset {early.headers['Upload-Offset']!r}"
            " (SHOULD NOT before the concatenation is finished)"
        )
    if early.headers.get("Upload-Length") != str(len(WHOLE)):
        raise ctx.fail(
            f"HEAD of an unfinished final upload has Upload-Length {early.headers.get('Upload-Length')!r}, expected "
            f"{len(WHOLE)}: the partials' lengths are known, so it can be calculated (MUST be included)"
        )
    return "finished: Upload-Concat lists the partials, Length = Offset = 11; unfinished: Length 11, no Offset"


@check("concat.final-patch-403", extension=EXTENSION)
def concat_final_patch_403(ctx: Context) -> str:
    """PATCH against a final upload gets 403; neither the final nor its partials change.

    "The Server MUST respond with the 403 Forbidden status to PATCH requests against a final upload URL and MUST
    NOT modify the final or its partial uploads."
    """
    parts = [partial(ctx, PARTS[0]), partial(ctx, PARTS[1])]
    url = create_final(ctx, parts)
    wait_complete(ctx, url, len(WHOLE), timeout_s=5.0)
    for offset in (len(WHOLE), 0):
        response = ctx.patch(url, offset, b"!")
        if response.status_code != 403:
            raise ctx.fail(f"PATCH at offset {offset} of a final upload answered {describe(response)}, expected 403")
    head = ctx.head(url)
    if head.headers.get("Upload-Offset") != str(len(WHOLE)) or head.headers.get("Upload-Length") != str(len(WHOLE)):
        raise ctx.fail(
            f"after the refused PATCH requests the final upload has Upload-Offset {head.headers.get('Upload-Offset')!r}"
            f", Upload-Length {head.headers.get('Upload-Length')!r}; expected both to stay {len(WHOLE)}"
        )
    for part, data in zip(parts, PARTS, strict=True):
        head = ctx.head(part)
        if head.status_code in (200, 204) and head.headers.get("Upload-Offset") != str(len(data)):
            raise ctx.fail(f"a partial upload changed: Upload-Offset {head.headers.get('Upload-Offset')!r}")
    notes = "403 at offsets 11 and 0; final and partials unchanged"
    if ctx.has(UNFINISHED):
        pending = create_final(ctx, [partial(ctx, PARTS[0], written=2)])
        response = ctx.patch(pending, 0, b"!")
        if response.status_code != 403:
            raise ctx.fail(f"PATCH of an unfinished final upload answered {describe(response)}, expected 403")
        notes += "; 403 for an unfinished final too"
    return notes


@check("concat.bad-parts", extension=EXTENSION)
def concat_bad_parts(ctx: Context) -> str:
    """A final naming unknown, non-partial or (without concatenation-unfinished) unfinished uploads is rejected: 4xx.

    "Multiple partial uploads are concatenated into a final upload" - only partial uploads can be parts; and
    "This concatenation request SHOULD happen after all of the corresponding partial uploads are completed" unless
    the server announces concatenation-unfinished.
    """
    regular = ctx.create(3)
    ctx.write(regular, 0, b"abc")
    good = partial(ctx, PARTS[0])
    cases = {
        "an unknown upload": [ctx.missing_url()],
        "a partial and an unknown upload": [good, ctx.missing_url()],
        "a regular (non-partial) upload": [regular],
        "a final upload": [create_final(ctx, [partial(ctx, PARTS[1])])],
    }
    if not ctx.has(UNFINISHED):
        cases["an unfinished partial upload"] = [partial(ctx, PARTS[1], written=2)]
    seen, problems = [], []
    for label, urls in cases.items():
        response = final(ctx, urls)
        if not 400 <= response.status_code < 500:
            problems.append(f"{label} -> {describe(response)}")
        seen.append(f"{label}: {response.status_code}")
    if problems:
        raise ctx.fail("a final naming these was not rejected with 4xx: " + "; ".join(problems))
    return "; ".join(seen)


@check("concat.reuse", extension=EXTENSION)
def concat_reuse(ctx: Context) -> str:
    """Partials MAY be deleted after concatenation, or reused for other finals; either way consistently.

    "The Server MAY delete partial uploads after concatenation. The Client, however, MAY attempt to use a partial
    upload multiple times. The same partial upload MAY be present multiple times in the Upload-Concat header in one
    upload creation request or MAY be used in multiple upload creation requests."
    """
    twice = partial(ctx, b"abc")
    url = create_final(ctx, [twice, twice])
    wait_complete(ctx, url, 6, timeout_s=5.0)
    notes = [f"one partial listed twice: 201, length 6, {verify_content(ctx, url, b'abcabc')}"]
    parts = [partial(ctx, PARTS[0]), partial(ctx, PARTS[1])]
    wait_complete(ctx, create_final(ctx, parts), len(WHOLE), timeout_s=5.0)
    again = final(ctx, parts)
    if again.status_code == 201 and again.headers.get("Location"):
        second = ctx.resolve(again.headers["Location"])
        wait_complete(ctx, second, len(WHOLE), timeout_s=5.0)
        notes.append(f"partials reused for a second final: {verify_content(ctx, second, WHOLE)}")
    elif 400 <= again.status_code < 500:
        alive = [part for part in parts if ctx.head(part).status_code in (200, 204)]
        if alive:
            raise ctx.fail(
                f"a second final over the same partials answered {describe(again)}, yet the partials still exist "
                "(HEAD 200): a partial that is kept MAY be used in multiple creation requests"
            )
        notes.append(f"partials deleted after concatenation (second final: {again.status_code})")
    else:
        raise ctx.fail(f"a second final over the same partials answered {describe(again)}")
    return "; ".join(notes)


@check("concat.unfinished", extension=UNFINISHED)
def concat_unfinished(ctx: Context) -> str:
    """The final may be created before its partials finish; it completes when they do.

    "The Client MAY send the concatenation request while the partial uploads are still in progress. This feature
    MUST be explicitly announced by the Server by adding concatenation-unfinished to the Tus-Extension header."
    """
    parts = [partial(ctx, PARTS[0], written=2), partial(ctx, PARTS[1], written=0)]
    url = create_final(ctx, parts)
    head = ctx.head(url)
    if head.status_code not in (200, 204) or not (head.headers.get("Upload-Concat") or "").startswith("final;"):
        concat = head.headers.get("Upload-Concat")
        raise ctx.fail(f"HEAD of the unfinished final upload: {describe(head)}, Upload-Concat {concat!r}")
    ctx.write(parts[0], 2, PARTS[0][2:])
    ctx.write(parts[1], 0, PARTS[1])
    wait_complete(ctx, url, len(WHOLE), timeout_s=10.0)
    return f"final created first, complete once the partials finished; {verify_content(ctx, url, WHOLE)}"
