"""Core protocol: OPTIONS, versions, HEAD, method override, number syntax (https://tus.io/protocols/resumable-upload)."""

from __future__ import annotations

import httpx

from conformance.context import OCTET, TUS_VERSION, Context, describe
from conformance.parsing import cache_directives, is_token, parse_list, parse_non_negative_int
from conformance.runner import check


@check("core.resumable-everywhere")
def resumable_everywhere(ctx: Context) -> str:
    """Every response except to OPTIONS carries `Tus-Resumable: 1.0.0`.

    "The Tus-Resumable header MUST be included in every request and response except for OPTIONS requests."
    """
    ctx.require("creation", "to make a test upload")
    seen: list[tuple[str, httpx.Response]] = []
    created = ctx.post({"Upload-Length": "10"})
    seen.append(("POST", created))
    if created.status_code != 201 or "Location" not in created.headers:
        raise ctx.fail(f"setup: POST with Upload-Length 10 answered {describe(created)}, expected 201 with Location")
    url = ctx.resolve(created.headers["Location"])
    seen.append(("HEAD", ctx.head(url)))
    seen.append(("PATCH", ctx.patch(url, 0, b"abc")))
    seen.append(("PATCH with a stale offset", ctx.patch(url, 0, b"abc")))
    seen.append(("POST without Upload-Length", ctx.post({})))
    seen.append(("HEAD of a missing upload", ctx.head(ctx.missing_url())))
    if ctx.has("termination"):
        seen.append(("DELETE", ctx.delete(url)))
    bad = [
        f"{label} ({response.status_code}): {response.headers.get('Tus-Resumable')!r}"
        for label, response in seen
        if response.headers.get("Tus-Resumable") != TUS_VERSION
    ]
    if bad:
        raise ctx.fail("Tus-Resumable missing or not 1.0.0 on: " + "; ".join(bad))
    return "on " + ", ".join(f"{label} ({response.status_code})" for label, response in seen)


def _unsupported_version(ctx: Context) -> str:
    return next(v for v in ("0.2.0", "0.1.0", "9.9.9") if v not in ctx.info.versions)


@check("core.version-412")
def version_412(ctx: Context) -> str:
    """An unsupported `Tus-Resumable` gets 412 with `Tus-Version`, and the request is not processed.

    "If the version specified by the Client is not supported by the Server, it MUST respond with the 412
    Precondition Failed status and MUST include the Tus-Version header into the response. In addition, the Server
    MUST NOT process the request." For OPTIONS, "the Server MUST ignore the header".
    """
    old = _unsupported_version(ctx)
    url = ctx.create(10)
    problems: list[str] = []

    def expect_412(label: str, response: httpx.Response) -> None:
        if response.status_code != 412:
            problems.append(f"{label} answered {describe(response)}, expected 412")
        elif not parse_list(response.headers.get("Tus-Version")):
            problems.append(f"{label}: 412 without Tus-Version")

    expect_412("HEAD", ctx.head(url, headers={"Tus-Resumable": old}))
    expect_412("PATCH", ctx.patch(url, 0, b"abc", headers={"Tus-Resumable": old}))
    if ctx.offset(url) != 0:
        problems.append("the PATCH with the old version was applied anyway")
    post = ctx.post({"Upload-Length": "10", "Tus-Resumable": old})
    expect_412("POST", post)
    if post.headers.get("Location"):
        problems.append("the POST with the old version created an upload anyway")
    if ctx.has("termination"):
        expect_412("DELETE", ctx.delete(url, headers={"Tus-Resumable": old}))
        if ctx.head(url).status_code not in (200, 204):
            problems.append("the DELETE with the old version removed the upload anyway")
    options = ctx.options(headers={"Tus-Resumable": old})
    if options.status_code not in (200, 204):
        problems.append(f"OPTIONS with Tus-Resumable {old} answered {describe(options)}; OPTIONS must ignore it")
    if problems:
        raise ctx.fail(f"with Tus-Resumable: {old}: " + "; ".join(problems))
    return f"Tus-Resumable {old}: 412 with Tus-Version on HEAD, PATCH, POST" + (
        ", DELETE" if ctx.has("termination") else ""
    )


@check("core.options")
def options(ctx: Context) -> str:
    """OPTIONS answers 204/200 with `Tus-Version`, `Tus-Extension` (if any) and `Tus-Max-Size` (if limited).

    "A successful response indicated by the 204 No Content or 200 OK status MUST contain the Tus-Version
    header. It MAY include the Tus-Extension and Tus-Max-Size headers."
    """
    response = ctx.options()
    problems: list[str] = []
    if response.status_code not in (200, 204):
        problems.append(f"answered {describe(response)}, expected 204 or 200")
    versions = parse_list(response.headers.get("Tus-Version"))
    if TUS_VERSION not in versions:
        problems.append(f"Tus-Version {response.headers.get('Tus-Version')!r} does not list {TUS_VERSION}")
    raw_extensions = response.headers.get("Tus-Extension")
    if raw_extensions is not None:
        extensions = parse_list(raw_extensions)
        if not extensions:
            problems.append("Tus-Extension is present but empty (omit it when there are none)")
        bad = [name for name in extensions if not is_token(name)]
        if bad:
            problems.append(f"Tus-Extension has items that are not extension names: {bad}")
    max_size = response.headers.get("Tus-Max-Size")
    try:
        parse_non_negative_int(max_size)
    except ValueError:
        problems.append(f"Tus-Max-Size {max_size!r} is not a non-negative integer")
    if problems:
        raise ctx.fail("; ".join(problems))
    return (
        f"{response.status_code}, Tus-Version {', '.join(versions)}; "
        f"extensions: {raw_extensions or '(none)'}; Tus-Max-Size: {max_size or '(no limit)'}"
    )


@check("core.head-offset")
def head_offset(ctx: Context) -> str:
    """HEAD answers 200/204 with `Upload-Offset` (also 0 and when complete), `Upload-Length`, `Cache-Control: no-store`.

    "The Server MUST always include the Upload-Offset header in the response for a HEAD request, even if the
    offset is 0, or the upload is already considered completed. If the size of the upload is known, the Server
    MUST include the Upload-Length header [...] The Server MUST prevent the client and/or proxies from caching
    the response by adding the Cache-Control: no-store header to the response."
    """
    url = ctx.create(5)
    problems: list[str] = []
    for moment, expected in (("new", "0"), ("complete", "5")):
        if moment == "complete":
            ctx.write(url, 0, b"12345")
        response = ctx.head(url)
        if response.status_code not in (200, 204):
            problems.append(f"{moment} upload: HEAD answered {describe(response)}, expected 200 or 204")
            continue
        if response.headers.get("Upload-Offset") != expected:
            problems.append(
                f"{moment} upload: Upload-Offset {response.headers.get('Upload-Offset')!r}, expected {expected}"
            )
        if response.headers.get("Upload-Length") != "5":
            problems.append(f"{moment} upload: Upload-Length {response.headers.get('Upload-Length')!r}, expected 5")
        if "no-store" not in cache_directives(response.headers.get("Cache-Control")):
            problems.append(f"{moment} upload: Cache-Control {response.headers.get('Cache-Control')!r} lacks no-store")
    if problems:
        raise ctx.fail("; ".join(problems))
    return "Upload-Offset 0 then 5 (complete), Upload-Length 5, Cache-Control: no-store"


@check("core.head-missing")
def head_missing(ctx: Context) -> str:
    """HEAD of an unknown upload answers 404 (or 410/403) without `Upload-Offset`.

    "If the resource is not found, the Server SHOULD return either the 404 Not Found, 410 Gone or 403 Forbidden
    status without the Upload-Offset header."
    """
    url = ctx.missing_url()
    response = ctx.head(url)
    if response.status_code not in (404, 410, 403):
        raise ctx.fail(f"HEAD of a missing upload answered {describe(response)}, expected 404, 410 or 403")
    if "Upload-Offset" in response.headers:
        raise ctx.fail(f"{response.status_code} carries Upload-Offset {response.headers['Upload-Offset']!r}")
    return f"{response.status_code} without Upload-Offset"


@check("core.method-override")
def method_override(ctx: Context) -> str:
    """`X-HTTP-Method-Override` is taken as the request's method.

    "The X-HTTP-Method-Override request header MUST be a string which MUST be interpreted as the request's
    method by the Server, if the header is presented. The actual method of the request MUST be ignored."
    """
    url = ctx.create(10)
    problems: list[str] = []
    patch = ctx.request(
        "POST",
        url,
        headers={"X-HTTP-Method-Override": "PATCH", "Upload-Offset": "0", "Content-Type": OCTET},
        content=b"abc",
    )
    if patch.status_code != 204 or patch.headers.get("Upload-Offset") != "3":
        problems.append(
            f"POST overridden to PATCH answered {describe(patch)} with Upload-Offset "
            f"{patch.headers.get('Upload-Offset')!r}, expected 204 with 3"
        )
    # A HEAD answer may announce a Content-Length it never sends, so we stop after the response head.
    head = ctx.request("POST", url, headers={"X-HTTP-Method-Override": "HEAD"}, stream=True)
    if head.status_code not in (200, 204) or head.headers.get("Upload-Offset") is None:
        problems.append(
            f"POST overridden to HEAD answered HTTP {head.status_code} with Upload-Offset "
            f"{head.headers.get('Upload-Offset')!r}, expected 200/204 with the offset"
        )
    elif patch.status_code == 204 and head.headers.get("Upload-Offset") != "3":
        problems.append(f"POST overridden to HEAD reports Upload-Offset {head.headers.get('Upload-Offset')!r}, not 3")
    methods = "PATCH, HEAD"
    if ctx.has("termination"):
        methods += ", DELETE"
        delete = ctx.request("POST", url, headers={"X-HTTP-Method-Override": "DELETE"})
        after = ctx.head(url)
        if delete.status_code != 204 or after.status_code not in (404, 410):
            problems.append(
                f"POST overridden to DELETE answered {describe(delete)}, then HEAD {after.status_code}; "
                "expected 204, then 404 or 410"
            )
    if problems:
        raise ctx.fail("; ".join(problems))
    return f"POST with X-HTTP-Method-Override acted as {methods}"


BAD_NUMBERS = ("-1", "abc", "1e3", "+5", "1_0", "1.5", "0x10", "")
# For Upload-Offset, values a lenient parser would read as the current offset 0 (and then accept).
BAD_OFFSETS = ("-1", "abc", "1e3", "+0", "0_0", "0.0", "00x", "")


@check("core.numbers")
def numbers(ctx: Context) -> str:
    """`Upload-Length` and `Upload-Offset` are non-negative integers; anything else is 400.

    "The Upload-Length request and response header indicates the size of the entire upload in bytes. The value
    MUST be a non-negative integer." The same holds for Upload-Offset.
    """
    ctx.require("creation", "to make a test upload")
    problems: list[str] = []
    for value in BAD_NUMBERS:
        response = ctx.post({"Upload-Length": value})
        if response.status_code != 400:
            problems.append(f"POST Upload-Length {value!r} -> {describe(response)}")
    for value in BAD_OFFSETS:
        url = ctx.create(10)  # a fresh upload each: one wrongly accepted PATCH must not colour the next case
        response = ctx.patch(url, value, b"abc")
        if response.status_code != 400:
            problems.append(f"PATCH Upload-Offset {value!r} -> {describe(response)}")
        offset = ctx.offset(url)
        if offset != 0:
            problems.append(f"(that PATCH was applied: HEAD reports Upload-Offset {offset})")
    if problems:
        raise ctx.fail("expected 400: " + "; ".join(problems))
    return (
        f"400 for {len(BAD_NUMBERS)} bad Upload-Length and {len(BAD_OFFSETS)} bad Upload-Offset values "
        "('+5', '1_0', '1e3', ...); nothing created or written"
    )
