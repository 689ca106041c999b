"""HTTP/1.1 (``hypercorn.protocol.h11.H11Protocol``): the answers the HTTP layer gives on its own.

When h11 refuses a request (a head over the size limit: 431; a transfer coding it does not take: 501; a
request it cannot parse: 400) or its head
does not arrive in time (408, hypercorn_fixes.tcp), Hypercorn answered with an empty body: the client
learned a status and nothing else. We answer through tusedge's error table, with a one-line reason, so
these look like every other error of the server.

A request that closes its connection (``Connection: close``, or HTTP/1.0) may be followed on the wire by more
bytes: a pipelined request, or a body longer than its ``Content-Length``. h11 parses them as soon as the
request is read and raises, and Hypercorn answered that error (400) in place of the request's own answer,
which the app was still working on: the client of a PATCH declaring 69,999 bytes and sending 70,000 read a
400 though its PATCH had been committed (found by the raw fuzzer). RFC 9112 9.6 says a server MUST NOT
process any further requests after the one with ``close``, and 9.3 that answers come in request order: we
drop what follows such a request, unparsed, so the request gets its own answer and then the connection
closes (hypercorn_fixes.tcp then reads and drops what the client still sends before closing).
"""

from __future__ import annotations

from itertools import chain
from typing import Any

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


class ServerConnection(h11.Connection):
    """h11's server side that ignores what a client sends after the request that closes the connection."""

    def receive_data(self, data: bytes) -> None:
        if self.their_state is h11.MUST_CLOSE:
            return  # RFC 9112 9.6: no further request on this connection is processed (EOF included)
        super().receive_data(data)

    def next_event(self) -> h11.Event | type[h11.NEED_DATA] | type[h11.PAUSED]:
        if self.their_state is h11.MUST_CLOSE:
            # What is left in the buffer came after the closing request: not parsed. Hypercorn ends the
            # connection once the answer is sent (and on EOF, from its read loop), never from an h11 event.
            return h11.NEED_DATA
        return super().next_event()


def _wrap_init(original: Any) -> Any:
    def __init__(self: H11Protocol, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        self.connection = ServerConnection(h11.SERVER, max_incomplete_event_size=self.config.h11_max_incomplete_size)

    return __init__


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
    Patch(
        name="h11-nothing-after-close",
        target=H11Protocol,
        attribute="__init__",
        build=_wrap_init,
        kind="wrap",
        fingerprint="c7c989fd6a352626",
        reason="bytes after a request with Connection: close are dropped, not answered with a 400 in place of"
        " that request's own answer (RFC 9112 9.3, 9.6)",
        upstream="hypercorn 0.18.0 protocol/h11.py H11Protocol._handle_events answers h11's error for the bytes"
        " after a closing request while that request's answer is pending; no upstream issue",
        test="tests/e2e/test_fuzz_raw.py::test_a_body_longer_than_its_content_length_gets_its_own_answer_first",
    ),
)
