"""Extension expiration (https://tus.io/protocols/resumable-upload#expiration)."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import httpx

from conformance.context import Context, describe
from conformance.parsing import parse_imf_fixdate
from conformance.runner import check

EXTENSION = "expiration"
GRACE_S = 5.0  # after Upload-Expires: one-second resolution of the header, clock steps, a busy server


def _expires(ctx: Context, label: str, response: httpx.Response) -> datetime | None:
    value = response.headers.get("Upload-Expires")
    if value is None:
        return None
    try:
        moment = parse_imf_fixdate(value)
    except ValueError as exc:
        raise ctx.fail(f"{label}: Upload-Expires {value!r} is not an RFC 9110 IMF-fixdate ({exc})") from None
    if moment < _server_now(response):
        raise ctx.fail(f"{label}: Upload-Expires {value!r} is already in the past for an upload that is alive")
    return moment


def _server_now(response: httpx.Response) -> datetime:
    """The server's clock (its Date header) when it has one: comparing with our clock would add the skew."""
    try:
        return parsedate_to_datetime(response.headers["Date"])
    except (KeyError, TypeError, ValueError):
        return datetime.now(UTC)


@check("exp.header", extension=EXTENSION)
def expires_header(ctx: Context) -> str:
    """`Upload-Expires` (IMF-fixdate) on the POST response when known, and on every PATCH response.

    "This header MUST be included in every PATCH response if the upload is going to expire. If the expiration is
    known at the creation, the Upload-Expires header MUST be included in the response to the initial POST
    request." "The value of the Upload-Expires header MUST be in RFC 9110 datetime format."
    """
    post = ctx.post({"Upload-Length": "10"})
    if post.status_code != 201 or not post.headers.get("Location"):
        raise ctx.fail(f"setup: POST answered {describe(post)}")
    url = ctx.resolve(post.headers["Location"])
    at_post = _expires(ctx, "POST", post)
    missing = []
    for offset, body in ((0, b"abc"), (3, b"de")):
        patch = ctx.write(url, offset, body)
        if _expires(ctx, f"PATCH at {offset}", patch) is None:
            missing.append(f"PATCH at offset {offset}")
    if at_post is None and missing:
        raise ctx.fail(
            "expiration is advertised (unfinished uploads expire), but neither the POST nor the PATCH responses of "
            "an unfinished upload carry Upload-Expires: either the header is missing or the server should not "
            "advertise expiration"
        )
    if missing:
        raise ctx.fail(
            f"the POST said the upload expires ({post.headers['Upload-Expires']}), but Upload-Expires is missing "
            f"on: {', '.join(missing)} (MUST be on every PATCH response of an upload that will expire)"
        )
    where = "POST and every PATCH" if at_post is not None else "every PATCH (not on POST: expiry unknown then)"
    return f"valid IMF-fixdate on {where}, e.g. {post.headers.get('Upload-Expires') or 'n/a'}"


@check("exp.gone", extension=EXTENSION)
def expired_gone(ctx: Context) -> str:
    """After expiry the upload answers 404 or 410 (410 where the server remembers it).

    "If a Client does attempt to resume an upload which has since been removed by the Server, the Server SHOULD
    respond with the 404 Not Found or 410 Gone status." (Ours: an expired upload is gone at once; that its
    storage is reclaimed cannot be seen over HTTP.)
    """
    url = ctx.create(10)
    patch = ctx.write(url, 0, b"a")
    moment = _expires(ctx, "PATCH", patch)
    if moment is None:
        raise ctx.skip(
            "the PATCH response of an unfinished upload has no Upload-Expires, so there is no expiry to wait for "
            "(see exp.header)"
        )
    wait_s = (moment - _server_now(patch)).total_seconds()
    if wait_s > ctx.expiry_wait_s:
        raise ctx.skip(
            f"the test upload expires in {wait_s:.0f} s ({patch.headers['Upload-Expires']}), beyond --expiry-wait "
            f"{ctx.expiry_wait_s:.0f} s"
        )
    time.sleep(max(wait_s, 0.0))
    deadline = time.monotonic() + GRACE_S
    while True:
        head = ctx.head(url)
        if head.status_code in (404, 410) or time.monotonic() >= deadline:
            break
        time.sleep(0.25)
    if head.status_code not in (404, 410):
        raise ctx.fail(
            f"{GRACE_S:.0f} s after Upload-Expires ({patch.headers['Upload-Expires']}) HEAD still answers "
            f"{describe(head)}, expected 404 or 410"
        )
    resumed = ctx.patch(url, 1, b"b")
    if resumed.status_code not in (404, 410):
        raise ctx.fail(f"HEAD said {head.status_code}, but resuming the expired upload answered {describe(resumed)}")
    return f"HEAD {head.status_code} and PATCH {resumed.status_code} once expired (waited {wait_s:.1f} s)"
