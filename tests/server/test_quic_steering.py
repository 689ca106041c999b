"""The QUIC steering program, on real sockets of a real SO_REUSEPORT group in the kernel: each datagram
reaches the socket its destination connection id names, from any source port; an Initial without a token
reaches socket 0 (the worker that answers with a Retry). Connection ids, Retry tokens and the turns."""

from __future__ import annotations

import os
import select
import socket
from collections.abc import Iterator

import pytest
from aioquic.buffer import Buffer  # type: ignore[attr-defined]
from aioquic.quic.packet import PACKET_TYPE_INITIAL, QuicHeader, pull_quic_header

from tusedge.server.quic_retry import ForeignToken, InvalidToken, RetryAdmission, RetryTokens
from tusedge.server.quic_steering import Steering, attach, new_cid, steer, worker_of


@pytest.fixture(params=[2, 3])
def group(request: pytest.FixtureRequest) -> Iterator[list[socket.socket]]:
    socks: list[socket.socket] = []
    for _ in range(request.param):
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(("127.0.0.1", socks[0].getsockname()[1] if socks else 0))
        sock.setblocking(False)
        socks.append(sock)
    attach(socks[0], len(socks))
    yield socks
    for sock in socks:
        sock.close()


def receiver(group: list[socket.socket], payload: bytes) -> int:
    """Which socket of the group gets ``payload``, sent from a new source port."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
        sender.sendto(payload, group[0].getsockname())
    readable, _, _ = select.select(group, [], [], 5)
    assert len(readable) == 1
    assert readable[0].recv(4096) == payload
    return group.index(readable[0])


def short_header(cid: bytes) -> bytes:
    return bytes([0x40]) + cid + os.urandom(40)


def long_header(first: int, dcid: bytes, token: bytes | None) -> bytes:
    head = bytes([first]) + b"\x00\x00\x00\x01" + bytes([len(dcid)]) + dcid + bytes([8]) + os.urandom(8)
    if token is not None:  # an Initial: token length, token
        head += bytes([len(token)]) + token
    return head + b"\x44\x00" + os.urandom(1100)  # Length (a 2-byte varint), then the packet


def test_a_short_header_reaches_the_worker_its_connection_id_names_from_any_port(group: list[socket.socket]) -> None:
    for worker in range(len(group)):
        assert {receiver(group, short_header(new_cid(worker, len(group)))) for _ in range(24)} == {worker}


def test_an_initial_without_a_token_reaches_worker_0_whatever_its_connection_id(group: list[socket.socket]) -> None:
    assert {receiver(group, long_header(0xC0, os.urandom(8 + n % 13), b"")) for n in range(32)} == {0}


def test_an_initial_with_a_token_and_a_handshake_reach_the_worker_the_id_names(group: list[socket.socket]) -> None:
    for worker in range(len(group)):
        cid = new_cid(worker, len(group))
        assert {receiver(group, long_header(0xC0, cid, os.urandom(60))) for _ in range(8)} == {worker}
        assert {receiver(group, long_header(0xE0, cid, None)) for _ in range(8)} == {worker}  # Handshake


def test_a_socket_in_no_reuseport_group_refuses_the_program_and_steer_falls_back() -> None:
    said: list[str] = []
    with (
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as lone,
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as other,
    ):
        lone.bind(("127.0.0.1", 0))
        other.bind(("127.0.0.1", 0))
        with pytest.raises(OSError):
            attach(lone, 2)
        assert steer([lone, other], said.append) is None
    assert said and "address hash" in said[0]


@pytest.mark.parametrize("workers", [2, 3, 7, 256])
def test_connection_ids_name_their_worker_and_vary(workers: int) -> None:
    for worker in range(workers):
        cids = {new_cid(worker, workers) for _ in range(16)}
        assert len(cids) == 16 and {worker_of(cid, workers) for cid in cids} == {worker}
        assert {len(cid) for cid in cids} == {8}


ADDRESS = ("127.0.0.1", 40000)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_retry_token_holds_only_for_its_address_and_id_and_for_a_short_while() -> None:
    clock = Clock()
    tokens = RetryTokens(b"k" * 16, clock)
    token = tokens.create(ADDRESS, b"original", b"retrycid")
    assert tokens.validate(token, ADDRESS, b"retrycid") == b"original"
    with pytest.raises(InvalidToken, match="another address"):
        tokens.validate(token, ("127.0.0.1", 40001), b"retrycid")
    with pytest.raises(InvalidToken, match="another connection id"):
        tokens.validate(token, ADDRESS, b"othercid")
    with pytest.raises(ForeignToken):
        RetryTokens(b"x" * 16, clock).validate(token, ADDRESS, b"retrycid")
    with pytest.raises(ForeignToken):
        tokens.validate(b"short", ADDRESS, b"retrycid")
    clock.now += 11
    with pytest.raises(InvalidToken, match="expired"):
        tokens.validate(token, ADDRESS, b"retrycid")


def initial(dcid: bytes, token: bytes = b"") -> QuicHeader:
    return QuicHeader(
        version=1, packet_type=PACKET_TYPE_INITIAL, packet_length=1200, destination_cid=dcid,
        source_cid=b"clientsc", token=token, integrity_tag=b"", supported_versions=[],
    )  # fmt: skip


def test_retries_name_the_workers_in_turn_and_a_repeated_initial_gets_the_same_one() -> None:
    admission = RetryAdmission(Steering(0, 2, b"k" * 16))
    sent: list[bytes] = []

    def retry_cid(dcid: bytes) -> bytes:
        assert admission.admit(initial(dcid), ADDRESS, lambda data, _: sent.append(data)) is None
        header = pull_quic_header(Buffer(data=sent[-1]), host_cid_length=8)
        assert header.destination_cid == b"clientsc"
        return header.source_cid

    firsts = [retry_cid(os.urandom(8)) for _ in range(4)]
    assert [worker_of(cid, 2) for cid in firsts] == [0, 1, 0, 1]
    again = os.urandom(8)
    assert retry_cid(again) == retry_cid(again)  # the same turn, not the next
    assert worker_of(retry_cid(os.urandom(8)), 2) == 1


def test_an_initial_with_a_valid_token_is_admitted_and_a_stale_one_is_closed() -> None:
    clock = Clock()
    admission = RetryAdmission(Steering(1, 2, b"k" * 16), clock)
    token = admission.tokens.create(ADDRESS, b"original", b"retrycid")
    sent: list[bytes] = []
    assert admission.admit(initial(b"retrycid", token), ADDRESS, lambda data, _: sent.append(data)) == (
        b"original",
        b"retrycid",
    )
    assert sent == []
    clock.now += 60
    assert admission.admit(initial(b"retrycid", token), ADDRESS, lambda data, _: sent.append(data)) is None
    assert len(sent) == 1  # the INVALID_TOKEN close (an Initial), not a second Retry
    assert pull_quic_header(Buffer(data=sent[0]), host_cid_length=8).packet_type == PACKET_TYPE_INITIAL
