"""A raw HTTP/2 client on a plain socket (cleartext h2 with prior knowledge, or TLS with ALPN h2), built on the
h2 library, for tests that need frames a normal client never sends: header lists past the advertised limit,
a HEADERS frame without END_HEADERS, DATA after the answer."""

from __future__ import annotations

import functools
import socket
import ssl
import time
from dataclasses import dataclass, field

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import h2.settings
from hyperframe.frame import ContinuationFrame, HeadersFrame


@dataclass
class Answer:
    status: int | None = None
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    ended: bool = False
    reset: int | None = None  # RST_STREAM's error code, if the server reset the stream


class H2Raw:
    def __init__(self, port: int, *, tls: ssl.SSLContext | None = None, timeout_s: float = 15.0) -> None:
        raw = socket.create_connection(("127.0.0.1", port), timeout=timeout_s)
        self.sock = tls.wrap_socket(raw, server_hostname="localhost") if tls is not None else raw
        self.h2 = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding=None))
        # hpack's Huffman encoder takes time quadratic in a value's length (140 s for 1 MiB): literal strings.
        self.h2.encoder.encode = functools.partial(self.h2.encoder.encode, huffman=False)  # type: ignore[method-assign]
        self.answers: dict[int, Answer] = {}
        self.goaway: h2.events.ConnectionTerminated | None = None
        self.closed = False  # the server closed the socket
        self.settings_received = False
        self.timeout_s = timeout_s

    def start(self) -> None:
        """Preface and SETTINGS, sent at once (a client does not wait for the server's SETTINGS)."""
        self.h2.initiate_connection()
        self.flush()

    def flush(self) -> None:
        data = self.h2.data_to_send()
        if data:
            self.sock.sendall(data)

    def request(self, method: str, path: str, headers: list[tuple[str, str]], *, end_stream: bool = True) -> int:
        stream_id = self.h2.get_next_available_stream_id()
        pseudo = [(":method", method), (":path", path), (":scheme", "http"), (":authority", "127.0.0.1")]
        self.h2.send_headers(stream_id, [(n.encode(), v.encode()) for n, v in pseudo + headers], end_stream=end_stream)
        self.answers[stream_id] = Answer()
        self.flush()
        return stream_id

    def send_data(self, stream_id: int, data: bytes, *, end_stream: bool = False) -> None:
        self.h2.send_data(stream_id, data, end_stream=end_stream)
        self.flush()

    def send_frame(self, frame: HeadersFrame | ContinuationFrame) -> None:
        """A frame as is, around h2's state machine (e.g. HEADERS without END_HEADERS)."""
        self.sock.sendall(frame.serialize())

    def receive(self) -> None:
        """One read from the socket, its events recorded (EOF: ``closed``)."""
        try:
            data = self.sock.recv(65536)
        except (ConnectionResetError, ssl.SSLError):
            data = b""
        if not data:
            self.closed = True
            return
        try:
            events = self.h2.receive_data(data)
        except h2.exceptions.ProtocolError:
            self.closed = True
            return
        for event in events:
            answer = self.answers.get(getattr(event, "stream_id", 0) or 0)
            if isinstance(event, h2.events.ResponseReceived) and answer is not None:
                headers = {n.decode(): v.decode() for n, v in event.headers}
                answer.status, answer.headers = int(headers[":status"]), headers
            elif isinstance(event, h2.events.DataReceived) and answer is not None:
                answer.body += event.data
                self.h2.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
            elif isinstance(event, h2.events.StreamEnded) and answer is not None:
                answer.ended = True
            elif isinstance(event, h2.events.StreamReset) and answer is not None:
                answer.reset = event.error_code
            elif isinstance(event, h2.events.ConnectionTerminated):
                self.goaway = event
            elif isinstance(event, h2.events.RemoteSettingsChanged):
                self.settings_received = True
        self.flush()

    def until(self, done: object, what: str) -> None:
        """Read until ``done()`` is true; fails after the timeout (a hang) or if the server closed first."""
        deadline = time.monotonic() + self.timeout_s
        while not done():  # type: ignore[operator]
            assert not self.closed, f"the server closed the connection while waiting for {what}"
            assert time.monotonic() < deadline, f"no {what} within {self.timeout_s} s"
            self.receive()

    def settle(self) -> None:
        """Until the server's SETTINGS arrived (frames up to its MAX_FRAME_SIZE, not 16 KiB, from then on)."""
        self.until(lambda: self.settings_received, "the server's SETTINGS")

    def answer(self, stream_id: int) -> Answer:
        answer = self.answers[stream_id]
        self.until(lambda: answer.ended or answer.reset is not None, f"the answer on stream {stream_id}")
        return answer

    def until_closed(self) -> float:
        """Read (and record) until the server closes; returns how long that took."""
        started = time.monotonic()
        deadline = started + self.timeout_s
        while not self.closed:
            assert time.monotonic() < deadline, f"the server kept the connection open for {self.timeout_s} s"
            self.receive()
        return time.monotonic() - started

    def close(self) -> None:
        self.sock.close()
