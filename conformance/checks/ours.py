"""Beyond the spec: this project's choices for downloads, browsers and error bodies (run with ``--ours``)."""

from __future__ import annotations

from collections.abc import Callable

import httpx

from conformance.context import OCTET, Context, describe
from conformance.parsing import disposition_filenames, encode_metadata, header_names
from conformance.runner import check

ORIGIN = "https://conformance.example"
# Response headers a browser client reads; the extension-specific ones are added when advertised.
EXPOSED_ALWAYS = (
    *("Upload-Offset", "Upload-Length", "Tus-Resumable", "Location", "Upload-Metadata"),
    *("Tus-Version", "Tus-Extension", "Tus-Max-Size"),
)
EXPOSED_BY_EXTENSION = {
    "creation-defer-length": "Upload-Defer-Length",
    "expiration": "Upload-Expires",
    "concatenation": "Upload-Concat",
    "checksum": "Tus-Checksum-Algorithm",
}
REQUEST_HEADERS = ("Tus-Resumable", "Upload-Offset", "Upload-Length", "Upload-Metadata", "Content-Type")
UNSAFE_NAME = '../../etc/pa"ss\\wd;\r\n x.txt'


@check("ours.get")
def download(ctx: Context) -> str:
    """GET of a finished upload returns its bytes; unfinished uploads are not served as complete.

    Ours: `Content-Length`, Range requests (206 with `Content-Range`), and a `Content-Disposition` whose filename
    carries no path separators, quotes or line breaks from the client's metadata.
    """
    data = b"0123456789"
    url = ctx.create(len(data), headers={"Upload-Metadata": encode_metadata({"filename": UNSAFE_NAME.encode()})})
    ctx.write(url, 0, data)
    whole = ctx.get(url)
    if whole.status_code != 200 or whole.content != data:
        raise ctx.fail(f"GET of a finished upload answered {describe(whole)} with {whole.content[:20]!r}")
    if whole.headers.get("Content-Length") != str(len(data)):
        raise ctx.fail(f"GET has Content-Length {whole.headers.get('Content-Length')!r}, expected {len(data)}")
    disposition = whole.headers.get("Content-Disposition")
    if disposition is None:
        raise ctx.fail("GET of an upload with a filename has no Content-Disposition")
    unsafe = [name for name in disposition_filenames(disposition) if any(c in name for c in '/\\"\r\n')]
    if not disposition_filenames(disposition) or unsafe:
        raise ctx.fail(f"Content-Disposition {disposition!r} does not carry a sanitised filename")
    part = ctx.get(url, headers={"Range": "bytes=2-5"})
    if part.status_code != 206 or part.content != data[2:6]:
        raise ctx.fail(f"GET with Range bytes=2-5 answered {describe(part)} with {part.content!r}, expected 206 2345")
    if part.headers.get("Content-Range") != "bytes 2-5/10":
        raise ctx.fail(f"206 with Content-Range {part.headers.get('Content-Range')!r}, expected 'bytes 2-5/10'")
    unfinished = ctx.create(10)
    ctx.write(unfinished, 0, b"0123")
    early = ctx.get(unfinished)
    if not 400 <= early.status_code < 500:
        raise ctx.fail(f"GET of an unfinished upload answered {describe(early)}, expected a 4xx refusal")
    return f"200 with Content-Length; 206 for a range; {disposition!r}; unfinished: {early.status_code}"


@check("ours.cors")
def cors(ctx: Context) -> str:
    """Browser cross-origin use: preflight answers, and `Access-Control-Expose-Headers` lists every tus header.

    Ours: a PATCH preflight (with `Origin`) gets 2xx allowing the origin, PATCH and the tus request headers; a HEAD
    with `Origin` exposes the response headers a browser client reads.
    """
    url = ctx.create(10)
    preflight = ctx.options(
        url,
        headers={
            "Origin": ORIGIN,
            "Access-Control-Request-Method": "PATCH",
            "Access-Control-Request-Headers": ", ".join(h.lower() for h in REQUEST_HEADERS),
        },
    )
    problems = []
    if not 200 <= preflight.status_code < 300:
        problems.append(f"preflight answered {describe(preflight)}")
    if preflight.headers.get("Access-Control-Allow-Origin") not in ("*", ORIGIN):
        problems.append(
            f"preflight Access-Control-Allow-Origin {preflight.headers.get('Access-Control-Allow-Origin')!r}"
        )
    methods = header_names(preflight.headers.get("Access-Control-Allow-Methods"))
    if not {"patch", "*"} & methods:
        problems.append(f"preflight Access-Control-Allow-Methods {sorted(methods)} lacks PATCH")
    allowed = header_names(preflight.headers.get("Access-Control-Allow-Headers"))
    if "*" not in allowed and not {h.lower() for h in REQUEST_HEADERS} <= allowed:
        lacking = sorted({h.lower() for h in REQUEST_HEADERS} - allowed)
        problems.append(f"preflight Access-Control-Allow-Headers lacks {lacking}")
    head = ctx.head(url, headers={"Origin": ORIGIN})
    if head.headers.get("Access-Control-Allow-Origin") not in ("*", ORIGIN):
        problems.append(f"HEAD Access-Control-Allow-Origin {head.headers.get('Access-Control-Allow-Origin')!r}")
    exposed = header_names(head.headers.get("Access-Control-Expose-Headers"))
    wanted = list(EXPOSED_ALWAYS) + [name for ext, name in EXPOSED_BY_EXTENSION.items() if ctx.has(ext)]
    missing = [name for name in wanted if name.lower() not in exposed]
    if "*" not in exposed and missing:
        problems.append(f"HEAD Access-Control-Expose-Headers lacks {', '.join(missing)}")
    if problems:
        raise ctx.fail("; ".join(problems))
    return f"preflight {preflight.status_code}; {len(wanted)} tus headers exposed"


def _malformed(ctx: Context) -> dict[str, Callable[[], httpx.Response]]:
    url = ctx.create(10)
    post = ctx.post
    cases: dict[str, Callable[[], httpx.Response]] = {
        "POST Upload-Length abc": lambda: post({"Upload-Length": "abc"}),
        "POST Upload-Length 2**64": lambda: post({"Upload-Length": str(2**64)}),
        "POST Upload-Length 30 digits": lambda: post({"Upload-Length": "9" * 30}),
        "POST without Upload-Length": lambda: post({}),
        "POST bad Upload-Metadata": lambda: post({"Upload-Length": "1", "Upload-Metadata": "k %%%"}),
        "POST Upload-Metadata with raw bytes": lambda: post({"Upload-Length": "1", "Upload-Metadata": b"k \xff\xfe"}),
        "POST Tus-Resumable 0.0.1": lambda: post({"Upload-Length": "1", "Tus-Resumable": "0.0.1"}),
        "PATCH wrong Content-Type": lambda: ctx.patch(url, 0, b"a", content_type="text/plain"),
        "PATCH Upload-Offset 2**64": lambda: ctx.patch(url, str(2**64), b"a"),
        "PATCH Upload-Offset -1": lambda: ctx.patch(url, "-1", b"a"),
        "PATCH without Upload-Offset": lambda: ctx.request("PATCH", url, headers={"Content-Type": OCTET}, content=b"a"),
        "PATCH wrong offset": lambda: ctx.patch(url, 5, b"a"),
        "PATCH missing upload": lambda: ctx.patch(ctx.missing_url(), 0, b"a"),
        "HEAD missing upload": lambda: ctx.head(ctx.missing_url()),
        "PATCH odd id": lambda: ctx.patch(ctx.endpoint.rstrip("/") + "/..%2f..%2fetc", 0, b"a"),
    }
    if ctx.has("creation-defer-length"):
        cases["POST Upload-Defer-Length 2"] = lambda: post({"Upload-Defer-Length": "2"})
    if ctx.has("checksum"):
        cases["PATCH unknown checksum"] = lambda: ctx.patch(url, 0, b"a", headers={"Upload-Checksum": "nope AAAA"})
    if ctx.has("concatenation"):
        cases["POST Upload-Concat bogus"] = lambda: post({"Upload-Length": "1", "Upload-Concat": "bogus"})
        cases["POST Upload-Concat final;"] = lambda: post({"Upload-Concat": "final;"})
    return cases


@check("ours.errors")
def errors(ctx: Context) -> str:
    """Every 4xx has a one-line reason in its body; malformed input never yields 5xx.

    Ours: a dozen malformed requests (bad numbers, numbers past 64 bits, bad metadata, wrong types and offsets,
    unknown uploads) must each get a 4xx, with a non-empty single-line body except for HEAD.
    """
    problems = []
    for label, send in _malformed(ctx).items():
        try:
            response = send()
        except httpx.HTTPError as exc:
            problems.append(f"{label}: no HTTP answer ({exc!r})")
            continue
        status = response.status_code
        if not 400 <= status < 500:
            problems.append(f"{label}: HTTP {status}, expected 4xx")
            continue
        if response.request.method == "HEAD":
            continue
        body = response.text.strip()
        if not body or "\n" in body or len(body) > 500:
            problems.append(f"{label}: {status} with body {body[:60]!r} (want one line with the reason)")
    if problems:
        raise ctx.fail("; ".join(problems))
    return "every malformed request got a 4xx with a one-line reason"
