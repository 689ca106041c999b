"""quic_loop.coalesce: a batch's stream data joined per stream before HTTP/3 sees it, without moving any
byte of a stream or any other event out of order (the e2e tests check the uploads' SHA-256 end to end)."""

from __future__ import annotations

from aioquic.quic.events import ConnectionTerminated, QuicEvent, StreamDataReceived, StreamReset

from tusedge.server.hypercorn_fixes.quic_loop import coalesce


def data(stream_id: int, piece: bytes, end: bool = False) -> StreamDataReceived:
    return StreamDataReceived(data=piece, end_stream=end, stream_id=stream_id)


def stream_bytes(events: list[QuicEvent], stream_id: int) -> bytes:
    return b"".join(e.data for e in events if isinstance(e, StreamDataReceived) and e.stream_id == stream_id)


def test_consecutive_data_of_one_stream_becomes_one_event() -> None:
    out = coalesce([data(0, b"ab"), data(0, b"cd"), data(0, b"ef", end=True)])
    assert out == [data(0, b"abcdef", end=True)]


def test_interleaved_streams_are_joined_each_in_its_own_order() -> None:
    events: list[QuicEvent] = [data(0, b"a"), data(4, b"1"), data(0, b"b"), data(4, b"2"), data(0, b"c")]
    out = coalesce(events)
    assert out == [data(0, b"abc"), data(4, b"12")]
    assert stream_bytes(out, 0) == stream_bytes(events, 0) and stream_bytes(out, 4) == stream_bytes(events, 4)


def test_no_data_is_moved_across_another_event() -> None:
    reset = StreamReset(error_code=0x10C, stream_id=4)
    closed = ConnectionTerminated(error_code=0, frame_type=None, reason_phrase="")
    events: list[QuicEvent] = [data(0, b"a"), data(4, b"x"), data(0, b"b"), reset, data(0, b"c"), data(0, b"d"), closed]
    assert coalesce(events) == [data(0, b"ab"), data(4, b"x"), reset, data(0, b"cd"), closed]


def test_a_single_event_is_passed_on_as_it_is() -> None:
    event = data(8, b"only", end=True)
    assert coalesce([event])[0] is event
    assert coalesce([]) == []
