"""HTTP/2 (``hypercorn.protocol.h2.H2Protocol``): what we advertise, header lists past the limit, DATA after
the answer, and header blocks that never end.

* Hypercorn advertises h2's defaults: 16 KiB frames and a 64 KiB window per stream and per connection
  (``Config.h2_max_inbound_frame_size`` only sets an attribute h2 no longer reads). A client then sends an
  upload in 16 KiB frames and waits for a WINDOW_UPDATE every 32 KiB, which costs two thirds of the
  throughput. Hypercorn acknowledges data only once the app has taken it, so the windows also bound what one
  stream and one connection can make us buffer. docs/http2-http3.md has the figures.
* h2's HPACK decoder refuses a header list past ``SETTINGS_MAX_HEADER_LIST_SIZE`` (and past h2's own 64 KiB
  until the client acknowledged our SETTINGS) with a connection error: every upload on the connection
  ended, where HTTP/1.1 answers 431. The setting is advisory (RFC 9113 6.5.2), and a server may answer a
  larger field block with 431 as long as it decodes it whole, which keeps the connection's HPACK state in
  step (10.5.1). So we decode header lists up to ``H2_HEADER_LIST_DECODED_BYTES`` and the app answers 431
  on that stream; only past that (a compression bomb, or a client ignoring the setting by a factor of ten)
  is it a connection error (GOAWAY ENHANCE_YOUR_CALM).
* A DATA frame for a stream the app has already answered (the client's END_STREAM racing the answer, or a
  body the app refused before reading it: 409, 413, 431) raised ``KeyError`` in Hypercorn's event loop and
  ended the connection with a traceback: all its other uploads with it. Such data is acknowledged (so the
  connection window does not shrink) and dropped, and a body still coming is stopped with
  ``RST_STREAM(NO_ERROR)`` (RFC 9113 8.1), so the client does not send gigabytes nobody reads.
* Cleartext HTTP/2 with prior knowledge starts as HTTP/1.1: h11 reads the preface as a request, which stops
  the keep-alive timer, and the switch to HTTP/2 never restarted it, so a client that sent the preface and
  no request held its connection forever. After the switch an idle connection restarts the timer.
* A header block still incomplete (a HEADERS frame without END_HEADERS, CONTINUATION frames trickled, or a
  HEADERS frame itself half sent) :func:`header_block_pending` tells ``hypercorn_fixes.tcp``, which holds it
  to ``--header-timeout-s`` as it does an HTTP/1.1 head; past it :func:`end_for_header_timeout` ends the
  connection with GOAWAY, since no stream exists yet to answer on.
"""

from __future__ import annotations

from typing import Any

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.settings
from hypercorn.events import Event, Updated
from hypercorn.protocol import ProtocolWrapper
from hypercorn.protocol.h2 import H2Protocol
from hypercorn.protocol.h11 import H11Protocol

from tusedge.server.hypercorn_fixes.table import Patch

KIB = 1024
MIB = 1024 * KIB

H2_MAX_FRAME_BYTES = 256 * KIB
"""Largest HTTP/2 DATA frame a client may send us (SETTINGS_MAX_FRAME_SIZE; h2 default 16 KiB)."""
H2_STREAM_WINDOW_BYTES = 4 * MIB
"""Per-stream receive window (SETTINGS_INITIAL_WINDOW_SIZE; default 64 KiB)."""
H2_CONNECTION_WINDOW_BYTES = 16 * MIB
"""Per-connection receive window, shared by its streams (default 64 KiB)."""
H2_HEADER_LIST_DECODED_BYTES = 1 * MIB
"""Largest header list (as HTTP/2 counts it: 32 bytes more per header) decoded so that the app can answer 431
on its stream; past it, a connection error. The advertised SETTINGS_MAX_HEADER_LIST_SIZE stays 96 KiB."""

_HEADER_BLOCK_FRAMES = (0x1, 0x9)  # HEADERS, CONTINUATION (RFC 9113 6.2, 6.10)


class ServerConnection(h2.connection.H2Connection):
    """h2's connection that decodes header lists up to H2_HEADER_LIST_DECODED_BYTES, whatever it advertises."""

    def __init__(self, config: h2.config.H2Configuration) -> None:
        super().__init__(config=config)
        self.decoder.max_header_list_size = H2_HEADER_LIST_DECODED_BYTES

    def _local_settings_acked(self) -> Any:
        changes = super()._local_settings_acked()  # sets the decoder's bound to the advertised value
        self.decoder.max_header_list_size = H2_HEADER_LIST_DECODED_BYTES
        return changes


def _wrap_init(original: Any) -> Any:
    def __init__(self: H2Protocol, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        codes = h2.settings.SettingCodes
        # Hypercorn replaced h2's local settings with its own, before anything was sent: we do the same
        # with two more values, so the SETTINGS frame of initiate() carries them.
        self.connection.local_settings = h2.settings.Settings(
            client=False,
            initial_values={
                codes.MAX_CONCURRENT_STREAMS: self.config.h2_max_concurrent_streams,
                codes.MAX_HEADER_LIST_SIZE: self.config.h2_max_header_list_size,
                codes.ENABLE_CONNECT_PROTOCOL: 1,
                codes.INITIAL_WINDOW_SIZE: H2_STREAM_WINDOW_BYTES,
                codes.MAX_FRAME_SIZE: H2_MAX_FRAME_BYTES,
            },
        )
        self.connection.max_inbound_frame_size = H2_MAX_FRAME_BYTES

    return __init__


def _wrap_init_header_lists(original: Any) -> Any:
    def __init__(self: H2Protocol, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        # Nothing has been sent or received yet: the same connection, with what Hypercorn set on it.
        hypercorns = self.connection
        self.connection = ServerConnection(hypercorns.config)
        self.connection.local_settings = hypercorns.local_settings
        self.connection.max_inbound_frame_size = hypercorns.max_inbound_frame_size

    return __init__


def _wrap_initiate(original: Any) -> Any:
    async def initiate(
        self: H2Protocol, headers: list[tuple[bytes, bytes]] | None = None, settings: bytes | None = None
    ) -> None:
        await original(self, headers, settings)
        # The connection window starts at 65,535 bytes whatever SETTINGS say (RFC 9113 section 6.9.2).
        increment = H2_CONNECTION_WINDOW_BYTES - self.connection.inbound_flow_control_window
        if increment > 0:
            self.connection.increment_flow_control_window(increment)
            await self._flush()

    return initiate


def _wrap_handle_events(original: Any) -> Any:
    async def _handle_events(self: H2Protocol, events: list[h2.events.Event]) -> None:
        # One event at a time, so whether the stream is still known is asked when its turn comes (the
        # original awaits between events, and a stream can end during any of them).
        for event in events:
            if isinstance(event, h2.events.DataReceived) and event.stream_id not in self.streams:
                # The stream's answer was complete before its body: the bytes are dropped but still count
                # against the connection window, which only acknowledging them reopens; a body still coming
                # is stopped (RFC 9113 8.1: RST_STREAM with NO_ERROR after a complete answer).
                self.connection.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
                if event.stream_ended is None:
                    self.connection.reset_stream(event.stream_id, h2.errors.ErrorCodes.NO_ERROR)
                await self._flush()
            else:
                await original(self, [event])

    return _handle_events


def _wrap_protocol_handle(original: Any) -> Any:
    async def handle(self: ProtocolWrapper, event: Event) -> None:
        was_http1 = isinstance(self.protocol, H11Protocol)
        await original(self, event)
        if was_http1 and isinstance(self.protocol, H2Protocol) and self.protocol.idle:
            await self.send(Updated(idle=True))  # the preface alone: the keep-alive timer runs again

    return handle


def header_block_pending(protocol: H2Protocol) -> bool:
    """Part of a header block has arrived and not all of it (h2 holds it until END_HEADERS)."""
    buffer = protocol.connection.incoming_buffer
    if buffer._headers_buffer:  # HEADERS received, CONTINUATION awaited
        return True
    data = buffer._data  # bytes of a frame not yet complete: its type is the fourth byte of its header
    return len(data) >= 4 and data[3] in _HEADER_BLOCK_FRAMES


async def end_for_header_timeout(protocol: H2Protocol) -> None:
    """GOAWAY: no stream exists to answer 408 on. NO_ERROR with the last stream processed, so the client knows
    the stalled request was not and may send it again; the reason rides in the debug data."""
    protocol.connection.close_connection(
        h2.errors.ErrorCodes.NO_ERROR,
        additional_data=b"ERR_REQUEST_TIMEOUT: a header block did not arrive in time (--header-timeout-s)",
    )
    await protocol._flush()


PATCHES = (
    Patch(  # before h2-settings, which then sets its SETTINGS on this connection
        name="h2-header-lists-431",
        target=H2Protocol,
        attribute="__init__",
        build=_wrap_init_header_lists,
        kind="wrap",
        fingerprint="d577a96e2eb647a4",
        reason="header lists past the advertised SETTINGS_MAX_HEADER_LIST_SIZE (and past h2's 64 KiB before the"
        " client acknowledged our SETTINGS) are decoded up to 1 MiB, so the app answers 431 on that stream"
        " instead of h2 ending the connection",
        upstream="h2 4.x H2Connection._local_settings_acked sets the HPACK decoder's bound to the advertised"
        " value, and an oversized list is a DenialOfServiceError (connection error); hypercorn 0.18.0"
        " protocol/h2.py H2Protocol.__init__ creates that connection; no upstream issue",
        test="tests/e2e/test_http2_limits.py::test_a_header_list_over_the_limit_gets_431_on_its_stream",
    ),
    Patch(
        name="h2-settings",
        target=H2Protocol,
        attribute="__init__",
        build=_wrap_init,
        kind="wrap",
        fingerprint="d577a96e2eb647a4",
        reason="advertise 256 KiB frames and 4 MiB stream windows instead of h2's 16 KiB / 64 KiB",
        upstream="hypercorn 0.18.0 protocol/h2.py H2Protocol.__init__ sets DEFAULT_MAX_INBOUND_FRAME_SIZE, which"
        " h2 4.x no longer reads, and has no window setting; no upstream issue",
        test="tests/e2e/test_http2.py::test_http2_server_advertises_large_frames_and_windows",
    ),
    Patch(
        name="h2-connection-window",
        target=H2Protocol,
        attribute="initiate",
        build=_wrap_initiate,
        kind="wrap",
        fingerprint="fc365390735cd1b9",
        reason="open the connection window to 16 MiB (SETTINGS cannot: RFC 9113 6.9.2)",
        upstream="hypercorn 0.18.0 protocol/h2.py H2Protocol.initiate sends no WINDOW_UPDATE; no upstream issue",
        test="tests/e2e/test_http2.py::test_http2_server_opens_the_connection_window",
    ),
    Patch(
        name="h2-late-body",
        target=H2Protocol,
        attribute="_handle_events",
        build=_wrap_handle_events,
        kind="wrap",
        fingerprint="3378aef0a2348f0d",
        reason="DATA for a stream already answered and forgotten (a body after its 409) is acknowledged and"
        " dropped instead of ending the connection with a KeyError; a body still coming gets RST_STREAM(NO_ERROR)",
        upstream="hypercorn 0.18.0 protocol/h2.py H2Protocol._handle_events indexes self.streams for DataReceived"
        " (StreamEnded catches the KeyError, DataReceived does not); no upstream issue",
        test="tests/e2e/test_http2.py::test_http2_body_sent_after_its_answer_leaves_the_connection_up",
    ),
    Patch(
        name="h2c-idle-after-preface",
        target=ProtocolWrapper,
        attribute="handle",
        build=_wrap_protocol_handle,
        kind="wrap",
        fingerprint="b03e2962872c85e8",
        reason="a cleartext HTTP/2 connection (prior knowledge) that sends the preface and no request is closed"
        " after --keep-alive-s, not held forever",
        upstream="hypercorn 0.18.0 protocol/__init__.py ProtocolWrapper.handle switches to H2Protocol after"
        " h11 marked the connection busy (Updated(idle=False) for the preface's PRI request); no upstream issue",
        test="tests/e2e/test_http2_limits.py::test_an_http2_connection_that_sends_no_request_is_closed_after_the_keep_alive",
    ),
)
