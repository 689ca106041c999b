"""A link model: a userspace relay on loopback that gives every connection the network path it would have
between a client and a distant server. The kernel here has ``tbf`` but neither ``netem`` (delay, loss) nor
``fq`` (per-flow rates), so the path is modelled here, in one process between client and server:

    client --TCP/UDP--> [relay 127.0.0.1:P: path model per flow] --TCP/UDP--> server 127.0.0.1:S

What it models, per flow (a TCP connection, or a UDP 4-tuple such as a QUIC connection) and per direction:

- **A rate cap per flow** (``rate``, bytes/s): the flow's bytes leave one after another at that rate, as
  through a per-flow shaper (ISP or cloud per-connection limits, ``fq maxrate``). TCP: the queue in front
  of it is unbounded (bounded by the window below), so a capped flow runs at its cap without losses.
  UDP: a drop-tail queue of ``queue`` bytes; what does not fit is dropped, as a shaper would.
- **An optional shared bottleneck** (``shared_rate``): after its own cap, every flow's bytes pass one
  link of that rate, first come first served (one uplink shared by all connections).
- **A round-trip time** (``rtt``): each direction delays bytes by ``rtt / 2`` after the rate caps.
- **TCP's window** (``window``, bytes, 4 MiB by default: about what Linux's default 6 MiB receive buffer
  allows): at most that many bytes of a flow are in flight (read from the sender and not yet acknowledged;
  an acknowledgement reaches the sender one RTT after the bytes left), so a flow's throughput is at most
  ``window / rtt`` — the receive window / send buffer limit of long paths.
  Within it, TCP's congestion window: slow start from 10 segments (RFC 6928), growing by the bytes
  acknowledged, back to 10 segments after an idle period longer than the retransmission timeout
  (``max(0.2 s, 2 RTT)``, Linux's ``tcp_slow_start_after_idle``).
- **Random loss** (``loss``, per packet). UDP: the datagram is dropped; QUIC's own recovery and congestion
  control (aioquic's, Chromium's) react to it for real. TCP: the relay terminates TCP on both sides, so a
  loss is modelled as TCP would live through it: each 1448-byte segment is lost with probability ``loss``;
  a loss delays the bytes by one RTT (fast retransmit), holding back everything behind it (in-order
  delivery), and CUBIC's response (Linux's default: window x0.7, then the cubic growth back to the old
  window with its Reno-friendly floor; at most one reduction per RTT).

What it does not model: TCP's reaction to queue overflow at a shaper (a capped TCP flow here never loses;
a real one with a shallow shaper buffer loses now and then and recovers), retransmission timeouts (only
fast retransmit: no loss of a whole window), delayed ACKs, ACK compression and jitter, packet reordering,
the receiver's autotuning (the window is fixed), BBR or any other congestion control than CUBIC for TCP,
MTU and header overhead (rates count payload bytes), and the bytes sitting in the loopback socket buffers
on either side of the relay (they add buffering, not throughput). Rates are held to about a millisecond
(asyncio timers); the relay itself is one Python process, good for a few hundred MB/s in total.

Run: ``python -m benchmarks.linkmodel --upstream 127.0.0.1:S [--rate 12.5e6] [--rtt 0.08] [--window 4MiB]
[--shared-rate R] [--loss 0.01] [--udp]``. It prints ``linkmodel listening on 127.0.0.1:P`` (TCP, and UDP
on the same port with ``--udp``), then an ``open tcp N`` line per accepted connection and a ``flow ...``
line per finished flow with its byte counts.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import random
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from tusedge.config import parse_size

MSS = 1448  # payload of a TCP segment on a 1500-byte path
INITIAL_SEGMENTS = 10  # RFC 6928
MAX_READ = 256 * 1024
CUBIC_BETA = 0.7
CUBIC_C = 0.4  # segments / s^3
UDP_IDLE_S = 120.0
UDP_BUFFER = 8 * 1024 * 1024
# Linux's default largest receive buffer (net.ipv4.tcp_rmem) is 6 MiB, of which about 4 MiB is window.
DEFAULT_WINDOW = 4 * 1024 * 1024


@dataclass(frozen=True)
class PathModel:
    rate: float | None = None  # bytes/s per flow and direction; None: no per-flow cap
    rtt: float = 0.0  # seconds
    window: int = DEFAULT_WINDOW  # TCP: bytes in flight per flow and direction
    shared_rate: float | None = None  # bytes/s through one bottleneck shared by all flows, per direction
    loss: float = 0.0  # probability per packet (TCP: per MSS segment)
    queue: int = 1024 * 1024  # UDP: bytes a capped flow may queue before drop-tail
    seed: int | None = None

    def describe(self) -> str:
        parts = []
        if self.rate:
            parts.append(f"{self.rate / 1e6:g} MB/s per flow")
        if self.shared_rate:
            parts.append(f"{self.shared_rate / 1e6:g} MB/s shared")
        if self.rtt:
            parts.append(f"RTT {self.rtt * 1000:g} ms")
        if self.rtt:
            parts.append(f"window {self.window / 1024 / 1024:g} MiB")
        if self.loss:
            parts.append(f"loss {self.loss * 100:g} %")
        return ", ".join(parts) or "no limits"


class Serializer:
    """A link of a fixed rate with a queue in front: bytes leave one after another."""

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self.free_at = 0.0

    def depart(self, arrival: float, n: int) -> float:
        start = max(arrival, self.free_at)
        self.free_at = start + n / self.rate
        return self.free_at

    def backlog(self, now: float) -> int:
        """Bytes still queued at ``now``."""
        return int(max(0.0, self.free_at - now) * self.rate)


@dataclass
class Congestion:
    """TCP's congestion window (bytes) under slow start and CUBIC, per flow direction."""

    rtt: float
    cwnd: float = float(INITIAL_SEGMENTS * MSS)
    ssthresh: float = math.inf
    w_max: float = 0.0  # segments, before the last reduction
    epoch: float = 0.0
    k: float = 0.0
    last_reduction: float = -math.inf

    def acked(self, n: int, now: float, limit: float) -> None:
        if self.cwnd < self.ssthresh:
            self.cwnd += n
        else:
            segments = self.cwnd / MSS
            t = now - self.epoch
            target = CUBIC_C * (t - self.k) ** 3 + self.w_max
            friendly = self.w_max * CUBIC_BETA + 3 * (1 - CUBIC_BETA) / (1 + CUBIC_BETA) * t / max(self.rtt, 1e-3)
            target = max(target, friendly)
            if target > segments:
                segments += (target - segments) / segments * (n / MSS)
            else:
                segments += 0.01 * (n / MSS) / segments
            self.cwnd = segments * MSS
        self.cwnd = min(self.cwnd, max(limit, INITIAL_SEGMENTS * MSS))

    def lost(self, now: float) -> None:
        if now - self.last_reduction < self.rtt:
            return  # one reduction per round trip
        self.last_reduction = now
        self.w_max = self.cwnd / MSS
        self.cwnd = max(2.0 * MSS, self.cwnd * CUBIC_BETA)
        self.ssthresh = self.cwnd
        self.epoch = now
        self.k = (self.w_max * (1 - CUBIC_BETA) / CUBIC_C) ** (1 / 3)

    def idle_restart(self) -> None:
        self.cwnd = min(self.cwnd, float(INITIAL_SEGMENTS * MSS))


@dataclass
class Counters:
    up: int = 0
    down: int = 0
    dropped: int = 0
    started: float = field(default_factory=time.monotonic)


class LinkRelay:
    """The relay: a TCP listener (and a UDP socket on the same port) in front of ``upstream``."""

    def __init__(self, model: PathModel, upstream: tuple[str, int], udp: bool) -> None:
        self.model = model
        self.upstream = upstream
        self.udp = udp
        self.rng = random.Random(model.seed)
        # The shared bottleneck, one per direction.
        self.shared = {d: Serializer(model.shared_rate) for d in ("up", "down")} if model.shared_rate else {}
        self.flows = 0

    def serializers(self, direction: str) -> list[Serializer]:
        own = [Serializer(self.model.rate)] if self.model.rate else []
        return own + ([self.shared[direction]] if self.shared else [])

    # --- TCP -----------------------------------------------------------------------------------------
    async def handle(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        self.flows += 1
        flow = self.flows
        counters = Counters()
        peer = client_w.get_extra_info("peername") or ("?", 0)
        print(f"open tcp {flow} {peer[0]}:{peer[1]}", flush=True)
        try:
            server_r, server_w = await asyncio.open_connection(*self.upstream)
        except OSError:
            client_w.close()
            return
        for writer in (client_w, server_w):
            sock = writer.get_extra_info("socket")
            if sock is not None:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        up = TcpDirection(self, client_r, server_w, self.serializers("up"), counters, "up")
        down = TcpDirection(self, server_r, client_w, self.serializers("down"), counters, "down")
        try:
            await asyncio.gather(up.run(), down.run())
        finally:
            for writer in (client_w, server_w):
                writer.close()
            seconds = time.monotonic() - counters.started
            print(f"flow tcp {flow} {peer[0]}:{peer[1]} up={counters.up} down={counters.down} s={seconds:.3f}",
                  flush=True)  # fmt: skip

    # --- UDP -----------------------------------------------------------------------------------------
    async def start_udp(self, host: str, port: int) -> None:
        loop = asyncio.get_running_loop()
        self.udp_front, _ = await loop.create_datagram_endpoint(lambda: UdpFront(self), local_addr=(host, port))


class TcpDirection:
    """One direction of a TCP flow: read from ``source`` as the window allows, deliver to ``sink`` after the
    rate caps and half the RTT; an acknowledgement frees window space half an RTT after delivery."""

    def __init__(
        self,
        relay: LinkRelay,
        source: asyncio.StreamReader,
        sink: asyncio.StreamWriter,
        serializers: list[Serializer],
        counters: Counters,
        name: str,
    ) -> None:
        self.model = relay.model
        self.rng = relay.rng
        self.source, self.sink, self.serializers = source, sink, serializers
        self.counters, self.name = counters, name
        self.loop = asyncio.get_running_loop()
        self.one_way = self.model.rtt / 2
        self.limit = float(self.model.window)
        self.congestion = Congestion(self.model.rtt)
        self.rto = max(0.2, 2 * self.model.rtt)
        self.inflight = 0
        self.space = asyncio.Event()
        self.space.set()
        self.ready = asyncio.Event()
        self.queue: deque[tuple[float, bytes]] = deque()
        self.last_sent = self.loop.time()
        self.last_delivery = 0.0

    def allowed(self) -> float:
        if self.model.rtt == 0:
            return self.limit  # no round trip: nothing for a window to bound
        return min(self.limit, self.congestion.cwnd)

    async def run(self) -> None:
        reader = asyncio.ensure_future(self._read())
        try:
            await self._deliver()
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, OSError):
                await reader

    async def _read(self) -> None:
        while True:
            while self.inflight >= self.allowed():
                self.space.clear()
                await self.space.wait()
            now = self.loop.time()
            if now - self.last_sent > self.rto and self.inflight == 0:
                self.congestion.idle_restart()
            try:
                data = await self.source.read(int(min(MAX_READ, max(MSS, self.allowed() - self.inflight))))
            except (ConnectionError, OSError):
                data = b""
            now = self.loop.time()
            self.last_sent = now
            if not data:
                self.queue.append((max(now + self.one_way, self.last_delivery), b""))
                self.ready.set()
                return
            depart = now
            for link in self.serializers:
                depart = link.depart(depart, len(data))
            deliver = depart + self.one_way
            if self.model.loss:
                segments = math.ceil(len(data) / MSS)
                if self.rng.random() < 1 - (1 - self.model.loss) ** segments:
                    deliver += self.model.rtt  # fast retransmit: one round trip late, and all behind it
                    self.congestion.lost(now)
            deliver = max(deliver, self.last_delivery)
            self.last_delivery = deliver
            self.inflight += len(data)
            self.queue.append((deliver, data))
            self.ready.set()

    async def _deliver(self) -> None:
        while True:
            while not self.queue:
                self.ready.clear()
                await self.ready.wait()
            deliver, data = self.queue.popleft()
            delay = deliver - self.loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            if not data:
                with contextlib.suppress(OSError):
                    if self.sink.can_write_eof():
                        self.sink.write_eof()
                return
            try:
                self.sink.write(data)
                await self.sink.drain()
            except (ConnectionError, OSError):
                return
            setattr(self.counters, self.name, getattr(self.counters, self.name) + len(data))
            self.loop.call_at(max(self.loop.time(), deliver) + self.one_way, self._acked, len(data))

    def _acked(self, n: int) -> None:
        self.inflight -= n
        self.congestion.acked(n, self.loop.time(), self.limit)
        self.space.set()


class UdpFront(asyncio.DatagramProtocol):
    """The relay's UDP socket: one upstream socket per client address (a flow), datagrams both ways through
    the path model: loss, rate caps with a drop-tail queue, half the RTT."""

    def __init__(self, relay: LinkRelay) -> None:
        self.relay = relay
        self.flows: dict[tuple[str, int], UdpFlow] = {}
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)  # uvloop's is not a subclass
        _large_buffers(transport)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        flow = self.flows.get(addr)
        if flow is None:
            flow = UdpFlow(self, addr)
            self.flows[addr] = flow
            flow.opening = asyncio.ensure_future(flow.open())
        flow.from_client(data)


class UdpFlow(asyncio.DatagramProtocol):
    def __init__(self, front: UdpFront, client: tuple[str, int]) -> None:
        self.front, self.client = front, client
        relay = front.relay
        self.model, self.rng = relay.model, relay.rng
        self.links = {"up": relay.serializers("up"), "down": relay.serializers("down")}
        self.counters = Counters()
        self.upstream: asyncio.DatagramTransport | None = None
        self.opening: asyncio.Future[None] | None = None
        self.waiting: list[bytes] = []
        self.loop = asyncio.get_running_loop()
        self.last_seen = self.loop.time()
        relay.flows += 1
        self.number = relay.flows

    async def open(self) -> None:
        transport, _ = await self.loop.create_datagram_endpoint(lambda: self, remote_addr=self.front.relay.upstream)
        _large_buffers(transport)
        self.upstream = transport
        for data in self.waiting:
            transport.sendto(data)
        self.waiting.clear()
        self.loop.call_later(UDP_IDLE_S, self._check_idle)

    def _check_idle(self) -> None:
        if self.loop.time() - self.last_seen >= UDP_IDLE_S:
            seconds = time.monotonic() - self.counters.started
            c = self.counters
            print(f"flow udp {self.number} {self.client[0]}:{self.client[1]} up={c.up} down={c.down}"
                  f" dropped={c.dropped} s={seconds:.3f}", flush=True)  # fmt: skip
            self.front.flows.pop(self.client, None)
            if self.upstream is not None:
                self.upstream.close()
        else:
            self.loop.call_later(UDP_IDLE_S, self._check_idle)

    def _schedule(self, direction: str, data: bytes) -> float | None:
        """The delivery time of a datagram, or None when the path drops it."""
        now = self.loop.time()
        self.last_seen = now
        if self.model.loss and self.rng.random() < self.model.loss:
            return None
        depart = now
        for link in self.links[direction]:
            if link.backlog(depart) + len(data) > self.model.queue:
                return None  # drop-tail
            depart = link.depart(depart, len(data))
        return depart + self.model.rtt / 2

    def from_client(self, data: bytes) -> None:
        at = self._schedule("up", data)
        if at is None:
            self.counters.dropped += 1
            return
        self.counters.up += len(data)
        self.loop.call_at(at, self._to_server, data)

    def _to_server(self, data: bytes) -> None:
        if self.upstream is None:
            self.waiting.append(data)
        else:
            self.upstream.sendto(data)

    def datagram_received(self, data: bytes, addr: Any) -> None:
        at = self._schedule("down", data)
        if at is None:
            self.counters.dropped += 1
            return
        self.counters.down += len(data)
        front = self.front.transport
        if front is not None:
            self.loop.call_at(at, front.sendto, data, self.client)


def _large_buffers(transport: asyncio.BaseTransport) -> None:
    """8 MiB socket buffers for a UDP socket, so that bursts the relay has not read yet are not dropped by
    the kernel (losses must be the model's alone). Beyond net.core.rmem_max only as root (SO_RCVBUFFORCE)."""
    sock = transport.get_extra_info("socket")
    if sock is None:
        return
    for force, plain in ((33, socket.SO_RCVBUF), (32, socket.SO_SNDBUF)):  # SO_RCVBUFFORCE, SO_SNDBUFFORCE
        try:
            sock.setsockopt(socket.SOL_SOCKET, force, UDP_BUFFER)
        except OSError:
            sock.setsockopt(socket.SOL_SOCKET, plain, UDP_BUFFER)


def _address(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host or "127.0.0.1", int(port)


def _rate(text: str) -> float:
    """A rate in bytes/s: ``12.5e6``, ``12.5MB`` (10^6) or ``100mbit``."""
    value = text.strip().lower()
    for suffix, factor in (("mbit", 1e6 / 8), ("gbit", 1e9 / 8), ("kb", 1e3), ("mb", 1e6), ("gb", 1e9)):
        if value.endswith(suffix):
            return float(value[: -len(suffix)]) * factor
    return float(value)


def parse_args(argv: list[str] | None = None) -> tuple[PathModel, tuple[str, int], tuple[str, int], bool]:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.linkmodel", description=__doc__.split("\n")[0])
    parser.add_argument("--listen", default="127.0.0.1:0")
    parser.add_argument("--upstream", required=True, help="the server, host:port (TCP, and UDP with --udp)")
    parser.add_argument("--rate", type=_rate, default=None, help="per-flow cap, bytes/s (12.5MB, 100mbit)")
    parser.add_argument("--shared-rate", type=_rate, default=None, help="one bottleneck for all flows, bytes/s")
    parser.add_argument("--rtt", type=float, default=0.0, help="round-trip time, seconds")
    parser.add_argument("--window", type=parse_size, default=DEFAULT_WINDOW, help="TCP bytes in flight per flow")
    parser.add_argument("--loss", type=float, default=0.0, help="loss probability per packet")
    parser.add_argument("--queue", type=parse_size, default=1024 * 1024, help="UDP queue at a rate cap, bytes")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--udp", action="store_true", help="also relay UDP (QUIC) on the same port")
    args = parser.parse_args(argv)
    model = PathModel(args.rate, args.rtt, args.window, args.shared_rate, args.loss, args.queue, args.seed)
    return model, _address(args.listen), _address(args.upstream), args.udp


async def serve(model: PathModel, listen: tuple[str, int], upstream: tuple[str, int], udp: bool) -> None:
    relay = LinkRelay(model, upstream, udp)
    for _ in range(20):
        server = await asyncio.start_server(relay.handle, *listen, limit=MAX_READ)
        port = server.sockets[0].getsockname()[1]
        try:
            if udp:
                await relay.start_udp(listen[0], port)
            break
        except OSError:  # the UDP port of that number is taken: another TCP port
            server.close()
            if listen[1]:
                raise
    print(f"linkmodel listening on {listen[0]}:{port} ({model.describe()})", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with server:
        await stop.wait()


def main(argv: list[str] | None = None) -> int:
    model, listen, upstream, udp = parse_args(argv)
    try:
        import uvloop

        runner: Any = uvloop.run
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux
        runner = asyncio.run
    runner(serve(model, listen, upstream, udp))
    return 0


if __name__ == "__main__":
    sys.exit(main())


class RelayProcess:
    """``python -m benchmarks.linkmodel`` in a child process in front of ``upstream``; ``port`` is where
    clients connect, ``flows`` collects its ``flow ...`` lines. Stopped by PID (SIGTERM, then SIGKILL)."""

    def __init__(self, model: PathModel, upstream: tuple[str, int], udp: bool = False) -> None:
        args = [sys.executable, "-m", "benchmarks.linkmodel", "--upstream", f"{upstream[0]}:{upstream[1]}",
                "--rtt", str(model.rtt), "--window", str(model.window), "--loss", str(model.loss),
                "--queue", str(model.queue)]  # fmt: skip
        if model.rate:
            args += ["--rate", str(model.rate)]
        if model.shared_rate:
            args += ["--shared-rate", str(model.shared_rate)]
        if model.seed is not None:
            args += ["--seed", str(model.seed)]
        if udp:
            args.append("--udp")
        self.model = model
        self.flows: list[str] = []
        self._reader: threading.Thread | None = None
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                     cwd=Path(__file__).resolve().parent.parent)  # fmt: skip
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        found = re.search(r"listening on ([\d.]+):(\d+)", line)
        if not found:
            self.stop()
            raise RuntimeError(f"the link model did not start: {line}{self.proc.stdout.read()}")
        self.host, self.port = found.group(1), int(found.group(2))
        self._reader = threading.Thread(target=self._pump, daemon=True)
        self._reader.start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.flows.append(line.strip())

    def origin(self, scheme: str = "http") -> str:
        return f"{scheme}://{self.host}:{self.port}"

    def tcp_flows(self) -> int:
        """TCP connections opened through the relay so far."""
        return sum(1 for line in self.flows if line.startswith("open tcp"))

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        if self._reader is not None:
            self._reader.join(10)  # every line it printed is in ``flows``

    def __enter__(self) -> RelayProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
