"""HTTP/2 (``hypercorn.protocol.h2.H2Protocol``): the frame size and flow-control windows we advertise.

Hypercorn advertises h2's defaults: 16 KiB frames and a 64 KiB window per stream and per connection
(``Config.h2_max_inbound_frame_size`` only sets an attribute h2 no longer reads). A client then sends an
upload in 16 KiB frames and waits for a WINDOW_UPDATE every 32 KiB, which costs two thirds of the
throughput. Hypercorn acknowledges data only once the app has taken it, so the windows also bound what one
stream and one connection can make us buffer. docs/http2-http3.md has the figures.

A request answered before its body was read (a PATCH at the wrong offset: 409) is forgotten by Hypercorn
when its app returns, but the client may go on sending that body (RFC 9113 8.1). Hypercorn looked the stream
up for each such DATA frame and the KeyError ended the whole connection, with every upload multiplexed on
it. Such late bytes are now acknowledged (so the connection window is not used up) and dropped.
"""

from __future__ import annotations

from typing import Any

import h2.events
import h2.settings
from hypercorn.protocol.h2 import H2Protocol

from tusedge.server.hypercorn_fixes.table import Patch

KIB = 1024
MIB = 1024 * KIB

H2_MAX_FRAME_BYTES = 256 * KIB
"""Largest HTTP/2 DATA frame a client may send us (SETTINGS_MAX_FRAME_SIZE; h2 default 16 KiB)."""
H2_STREAM_WINDOW_BYTES = 4 * MIB
"""Per-stream receive window (SETTINGS_INITIAL_WINDOW_SIZE; default 64 KiB)."""
H2_CONNECTION_WINDOW_BYTES = 16 * MIB
"""Per-connection receive window, shared by its streams (default 64 KiB)."""


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
                # against the connection window, which only acknowledging them reopens.
                self.connection.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
                await self._flush()
            else:
                await original(self, [event])

    return _handle_events


PATCHES = (
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
        " dropped instead of ending the connection with a KeyError",
        upstream="hypercorn 0.18.0 protocol/h2.py H2Protocol._handle_events indexes self.streams for DataReceived"
        " (StreamEnded catches the KeyError, DataReceived does not); no upstream issue",
        test="tests/e2e/test_http2.py::test_http2_body_sent_after_its_answer_leaves_the_connection_up",
    ),
)
