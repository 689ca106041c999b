"""Extension termination (https://tus.io/protocols/resumable-upload#termination)."""

from __future__ import annotations

from conformance.context import Context, describe
from conformance.runner import check

EXTENSION = "termination"


@check("term.204", extension=EXTENSION)
def terminate_204(ctx: Context) -> str:
    """DELETE of an existing upload answers 204 (unfinished and complete uploads alike).

    "When receiving a DELETE request for an existing upload the Server SHOULD free associated resources and MUST
    respond with the 204 No Content status confirming that the upload was terminated."
    """
    unfinished = ctx.create(10)
    ctx.write(unfinished, 0, b"abc")
    complete = ctx.create(3)
    ctx.write(complete, 0, b"abc")
    for label, url in (("unfinished", unfinished), ("complete", complete)):
        response = ctx.delete(url)
        if response.status_code != 204:
            raise ctx.fail(f"DELETE of a {label} upload answered {describe(response)}, expected 204")
    return "204 for an unfinished and a complete upload"


@check("term.after", extension=EXTENSION)
def terminate_after(ctx: Context) -> str:
    """After DELETE, requests to that URL get 404 or 410.

    "For all future requests to this URL, the Server SHOULD respond with the 404 Not Found or 410 Gone status."
    """
    url = ctx.create(10)
    ctx.write(url, 0, b"abc")
    deleted = ctx.delete(url)
    if deleted.status_code != 204:
        raise ctx.fail(f"setup: DELETE answered {describe(deleted)}")
    answers = {
        "HEAD": ctx.head(url),
        "PATCH": ctx.patch(url, 3, b"def"),
        "DELETE": ctx.delete(url),
    }
    bad = [f"{method} -> {describe(r)}" for method, r in answers.items() if r.status_code not in (404, 410)]
    if bad:
        raise ctx.fail("after DELETE, expected 404 or 410: " + "; ".join(bad))
    return ", ".join(f"{method} {r.status_code}" for method, r in answers.items())
