"""HTTP/1.1 (``hypercorn.protocol.h11.H11Protocol``): the answers the HTTP layer gives on its own.

When h11 refuses a request (a head over the size limit: 431; a transfer coding it does not take: 501; a
request it cannot parse: 400) or its head
does not arrive in time (408, hypercorn_fixes.tcp), Hypercorn answered with an empty body: the client
learned a status and nothing else. We answer through tusedge's error table, with a one-line reason, so
these look like every other error of the server.
"""

from __future__ import annotations

from itertools import chain

import h11
from hypercorn.protocol.h11 import H11Protocol

from tusedge.errors import MalformedRequest, RequestHeadTooLarge, RequestTimeout, TusError, UnsupportedTransferCoding
from tusedge.protocol.metadata import MAX_REQUEST_HEAD_BYTES
from tusedge.server.hypercorn_fixes.table import Patch
from tusedge.server.responses import raw_error


def error_for_status(status: int) -> TusError:
    """The error of the table that an answer of the HTTP layer stands for."""
    if status == 431:
        return RequestHeadTooLarge(
            f"the request's headers are larger than {MAX_REQUEST_HEAD_BYTES} bytes, the most this server takes"
        )
    if status == 408:
        return RequestTimeout("the request's headers did not arrive in time (--header-timeout-s)")
    if status == 501:  # h11's hint for a Transfer-Encoding other than chunked
        return UnsupportedTransferCoding()
    return MalformedRequest()  # 400: h11 hints nothing else


async def _send_error_response(self: H11Protocol, status_code: int) -> None:
    status, headers, body = raw_error(error_for_status(status_code))
    headers = list(chain(headers, self.config.response_headers("h11")))
    await self._send_h11_event(h11.Response(status_code=status, headers=headers))
    await self._send_h11_event(h11.Data(data=body))
    await self._send_h11_event(h11.EndOfMessage())


PATCHES = (
    Patch(
        name="h11-error-answers",
        target=H11Protocol,
        attribute="_send_error_response",
        build=lambda original: _send_error_response,
        kind="replace",
        fingerprint="58c2b47ae295d000",
        reason="the HTTP layer's own 400, 408, 431 and 501 carry the error table's one-line reason (were empty)",
        upstream="hypercorn 0.18.0 protocol/h11.py H11Protocol._send_error_response sends Content-Length: 0;"
        " no upstream issue",
        test="tests/e2e/test_connection_hygiene.py::test_a_head_over_the_limit_is_answered_431_with_a_reason",
    ),
)
