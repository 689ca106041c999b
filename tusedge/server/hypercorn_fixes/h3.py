"""HTTP/3 requests (``hypercorn.protocol.h3.H3Protocol``, ``hypercorn.protocol.http_stream.HTTPStream``):
requests that end early on either side.

* A request the client resets (RESET_STREAM, STOP_SENDING) or whose connection ends never told the app:
  its ``receive()`` waited forever and the upload stayed locked until the lock went stale. We close the
  stream, so the app sees ``http.disconnect`` and keeps what arrived, as over TCP.
* Body data that arrives after the response (the client sends on while we answer early, e.g. 409) raised
  ``KeyError`` in the datagram loop and ended HTTP/3 for the whole process. We drop it, and what the app
  sends on a stream that is gone.

(A request answered before its body was read no longer needs a fix of its own: tusedge reads up to 4 MiB
of a refused body before it answers (``responses.drain_body``), and once the app has finished, its stream
is gone, so the batched loop drops what follows instead of waiting on the full queue of an app that will
never read it. docs/hypercorn-fixes.md, "Removed".)
"""

from __future__ import annotations

from typing import Any

from aioquic.h3.events import DataReceived, HeadersReceived
from aioquic.quic.events import ConnectionTerminated, QuicEvent, StopSendingReceived, StreamReset
from hypercorn.protocol.events import Body, EndBody, Request, StreamClosed
from hypercorn.protocol.events import Event as StreamEvent
from hypercorn.protocol.h3 import H3Protocol

from tusedge.server.hypercorn_fixes.table import Patch


async def _close_stream(self: H3Protocol, stream_id: int) -> None:
    stream = self.streams.pop(stream_id, None)
    if stream is not None:
        await stream.handle(StreamClosed(stream_id=stream_id))


async def _handle(self: H3Protocol, quic_event: QuicEvent) -> None:
    if isinstance(quic_event, StreamReset | StopSendingReceived):
        await _close_stream(self, quic_event.stream_id)
    elif isinstance(quic_event, ConnectionTerminated):
        for stream_id in list(self.streams):
            await _close_stream(self, stream_id)
    for event in self.connection.handle_event(quic_event):
        if isinstance(event, HeadersReceived):
            stream = self.streams.get(event.stream_id)
            if stream is None:
                if self.context.terminated.is_set():
                    continue
                await self._create_stream(event)
                stream = self.streams.get(event.stream_id)
            # else: trailers, which ASGI cannot pass on
            if stream is not None and event.stream_ended:
                await stream.handle(EndBody(stream_id=event.stream_id))
        elif isinstance(event, DataReceived):
            stream = self.streams.get(event.stream_id)
            if stream is None:
                continue  # the request already ended: answered early, or reset
            if event.data:
                await stream.handle(Body(stream_id=event.stream_id, data=event.data))
            if event.stream_ended:
                await stream.handle(EndBody(stream_id=event.stream_id))


def _wrap_stream_send(original: Any) -> Any:
    async def stream_send(self: H3Protocol, event: StreamEvent) -> None:
        # A stream we closed above (or that finished) takes no more frames; aioquic would raise.
        if isinstance(event, Request) or event.stream_id in self.streams:
            await original(self, event)

    return stream_send


PATCHES = (
    Patch(
        name="h3-request-ends",
        target=H3Protocol,
        attribute="handle",
        build=lambda original: _handle,
        kind="replace",
        fingerprint="54ea036044b5f427",
        reason="a reset stream or a closed connection ends the request (http.disconnect), and body data for a"
        " request that already ended is dropped instead of raising KeyError in the datagram loop",
        upstream="hypercorn 0.18.0 protocol/h3.py H3Protocol.handle ignores StreamReset/StopSendingReceived/"
        "ConnectionTerminated and indexes self.streams unguarded; the HTTP/2 twin of the KeyError is"
        " pgjones/hypercorn#329 (PRs #312, #334, open); no HTTP/3 issue upstream",
        test="tests/e2e/test_http3.py::test_failing_body_resets_its_stream_only_and_the_server_keeps_what_arrived",
    ),
    Patch(
        name="h3-send-on-ended-stream",
        target=H3Protocol,
        attribute="stream_send",
        build=_wrap_stream_send,
        kind="wrap",
        fingerprint="b57c4769fd9206e6",
        reason="what the app sends on a stream that was reset or closed is dropped (aioquic would raise)",
        upstream="hypercorn 0.18.0 protocol/h3.py H3Protocol.stream_send; no upstream issue",
        test="tests/e2e/test_http3.py::test_a_request_the_client_cancelled_is_answered_without_an_error",
    ),
)
