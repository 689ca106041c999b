"""The link model (benchmarks/linkmodel.py) holds: a capped flow runs near its cap and never above it, the
window over the RTT bounds a flow, a shared bottleneck is shared, every round trip takes the RTT, a lossy
TCP path still delivers every byte in order, and UDP loses the share of datagrams it is told to.

Each check is bounded on both sides, but only one side is physics: the model must never be faster than
the path it models (a strict bound); a busy machine can only make it slower, so the other bound is loose
(at least 30 % of the modelled rate: the relay is one Python process sharing the cores with the rest)."""

from __future__ import annotations

import hashlib
import os
import socket
import threading
import time
from collections.abc import Iterator

import pytest

from benchmarks.linkmodel import PathModel, RelayProcess

LOOSE = 0.3  # the least share of a modelled rate a busy machine must still reach


class Sink:
    """A TCP server on 127.0.0.1 that reads each connection to its end and answers the SHA-256 of what it
    got; with ``echo`` it sends every line back at once instead."""

    def __init__(self, echo: bool = False) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.address = self.sock.getsockname()
        self.echo = echo
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            digest = hashlib.sha256()
            while data := conn.recv(1 << 20):
                if self.echo:
                    conn.sendall(data)
                else:
                    digest.update(data)
            if not self.echo:
                conn.sendall(digest.hexdigest().encode())

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def sink() -> Iterator[Sink]:
    server = Sink()
    yield server
    server.close()


def send(port: int, data: bytes) -> tuple[float, str]:
    """Send ``data`` on a new connection to the relay; (seconds until the sink's answer, the answer)."""
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", port)) as conn:
        conn.sendall(data)
        conn.shutdown(socket.SHUT_WR)
        answer = b""
        while chunk := conn.recv(100):
            answer += chunk
    return time.monotonic() - started, answer.decode()


def send_parallel(port: int, data: bytes, flows: int) -> list[float]:
    took: list[float] = [0.0] * flows

    def one(i: int) -> None:
        took[i], answer = send(port, data)
        assert answer == hashlib.sha256(data).hexdigest()

    threads = [threading.Thread(target=one, args=(i,)) for i in range(flows)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    return took


def test_a_capped_flow_runs_near_its_cap_and_never_above_it(sink: Sink) -> None:
    data = os.urandom(4_000_000)
    with RelayProcess(PathModel(rate=2e6), sink.address) as relay:
        seconds, answer = send(relay.port, data)
    assert answer == hashlib.sha256(data).hexdigest()
    assert len(data) / seconds <= 2e6 * 1.02
    assert len(data) / seconds >= 2e6 * LOOSE


def test_each_flow_gets_its_own_cap(sink: Sink) -> None:
    """Four flows at a 1 MB/s cap each move 4 MB/s together: the cap is per connection."""
    data = os.urandom(2_000_000)
    with RelayProcess(PathModel(rate=1e6), sink.address) as relay:
        took = send_parallel(relay.port, data, 4)
    assert relay.tcp_flows() == 4
    assert all(len(data) / t <= 1e6 * 1.02 for t in took), took
    assert 4 * len(data) / max(took) >= 4e6 * LOOSE, took


def test_window_over_rtt_bounds_a_flow(sink: Sink) -> None:
    """No rate cap, a 200 ms round trip and a 256 KiB window: at most 1.31 MB/s, slow start included."""
    data = os.urandom(3_000_000)
    window, rtt = 256 * 1024, 0.2
    with RelayProcess(PathModel(rtt=rtt, window=window), sink.address) as relay:
        seconds, answer = send(relay.port, data)
    assert answer == hashlib.sha256(data).hexdigest()
    bound = window / rtt
    assert len(data) / seconds <= bound * 1.02
    assert len(data) / seconds >= bound * LOOSE


def test_a_shared_bottleneck_is_shared_by_all_flows(sink: Sink) -> None:
    data = os.urandom(1_000_000)
    with RelayProcess(PathModel(shared_rate=2e6), sink.address) as relay:
        took = send_parallel(relay.port, data, 4)
    assert 4 * len(data) / max(took) <= 2e6 * 1.02, took
    assert 4 * len(data) / max(took) >= 2e6 * LOOSE, took


def test_every_round_trip_takes_the_rtt() -> None:
    echo = Sink(echo=True)
    try:
        with RelayProcess(PathModel(rtt=0.05), echo.address) as relay:
            with socket.create_connection(("127.0.0.1", relay.port)) as conn:
                conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                started = time.monotonic()
                for i in range(10):
                    conn.sendall(b"ping %d\n" % i)
                    assert conn.recv(100) == b"ping %d\n" % i
                seconds = time.monotonic() - started
    finally:
        echo.close()
    assert 10 * 0.05 <= seconds <= 10 * 0.05 * 4, seconds


def test_a_lossy_tcp_path_delivers_every_byte_in_order(sink: Sink) -> None:
    """Loss on TCP is modelled as TCP lives through it (late bytes, a smaller window), never as lost data."""
    data = os.urandom(3_000_000)
    with RelayProcess(PathModel(rtt=0.01, loss=0.01, seed=15), sink.address) as relay:
        _, answer = send(relay.port, data)
    assert answer == hashlib.sha256(data).hexdigest()


def test_udp_loses_the_given_share_of_datagrams_and_relays_the_rest_both_ways() -> None:
    server = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    server.bind(("127.0.0.1", 0))
    server.settimeout(5)
    received: list[bytes] = []

    def serve() -> None:
        while True:
            try:
                data, addr = server.recvfrom(2048)
            except (TimeoutError, OSError):
                return
            received.append(data)
            server.sendto(b"ack " + data, addr)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    count, loss = 2000, 0.2
    with RelayProcess(PathModel(loss=loss, seed=15), server.getsockname(), udp=True) as relay:
        client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        client.settimeout(2)
        answers: list[bytes] = []

        def collect() -> None:
            while True:
                try:
                    answers.append(client.recv(2048))
                except (TimeoutError, OSError):
                    return

        collector = threading.Thread(target=collect, daemon=True)
        client.sendto(b"start", ("127.0.0.1", relay.port))
        collector.start()
        for i in range(count):
            client.sendto(b"%06d" % i, ("127.0.0.1", relay.port))
            time.sleep(0.0005)  # do not overrun the loopback socket buffers: losses must be the model's
        collector.join(30)
        client.close()
    received = [d for d in received if d != b"start"]
    answers = [a for a in answers if a != b"ack start"]
    server.close()
    thread.join(10)
    spread = 5 * (count * loss * (1 - loss)) ** 0.5
    assert abs(len(received) - count * (1 - loss)) <= spread, len(received)
    # The answers cross the lossy path too.
    assert abs(len(answers) - len(received) * (1 - loss)) <= spread, len(answers)
    assert all(a.removeprefix(b"ack ") in received for a in answers)
    assert [int(d) for d in received] == sorted(int(d) for d in received)  # in order
