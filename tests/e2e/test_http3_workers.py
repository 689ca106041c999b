"""``--http3 --workers N``: each worker reads its own UDP socket of one SO_REUSEPORT group on the port; a
BPF program on the group delivers each datagram to the worker its connection id names, and new connections
go to the workers in turn through a QUIC Retry (tusedge/server/quic_steering.py). Which worker holds a
connection is read from the server's connection ids the client holds, and their CPU time from /proc."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import random
import signal
import socket
from pathlib import Path

import httpx
from observe import wait_for
from server_process import ServerFactory, ServerProcess
from tls_servers import https_server

from tusedge.client.http3 import H3Transport
from tusedge.server.quic_steering import new_cid, worker_of
from tusedge.tls import ssl_context_for

MiB = 1024 * 1024
TUS = {"Tus-Resumable": "1.0.0"}
OCTETS = {**TUS, "Content-Type": "application/offset+octet-stream"}
CLK_TCK = os.sysconf("SC_CLK_TCK")


def worker_pids(server: ServerProcess) -> list[int]:
    """The server's worker processes (multiprocessing's spawned children; not its resource tracker)."""
    children = Path(f"/proc/{server.pid}/task/{server.pid}/children").read_text().split()
    pids = []
    for pid in map(int, children):
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
        if b"spawn_main" in cmdline and b"resource_tracker" not in cmdline:
            pids.append(pid)
    return sorted(pids)


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


async def one_client_uploads(
    server: ServerProcess, certfile: Path, seed: int, endpoint: str = ""
) -> tuple[str, bytes, bytes, list[bytes]]:
    """One HTTP/3 client (its own QUIC connection, its own UDP port) uploads 2 MiB in one PATCH; also
    returns every connection id the server gave it (the one in use and those of NEW_CONNECTION_ID)."""
    data = random.Random(seed).randbytes(2 * MiB + seed)
    transport = H3Transport(verify=str(certfile))
    async with httpx.AsyncClient(transport=transport, timeout=120) as client:
        created = await client.post(endpoint or server.url, headers={**TUS, "Upload-Length": str(len(data))})
        assert created.status_code == 201 and created.http_version == "HTTP/3"
        url = created.headers["Location"]
        patched = await client.patch(url, content=data, headers={**OCTETS, "Upload-Offset": "0"})
        assert patched.status_code == 204 and patched.headers["Upload-Offset"] == str(len(data))
        stored = (await client.get(url)).content
        (connection,) = transport._connections.values()
        quic = connection.protocol._quic
        cids = [quic._peer_cid.cid, *(cid.cid for cid in quic._peer_cid_available)]
    return url, data, stored, cids


def assert_intact(results: list[tuple[str, bytes, bytes, list[bytes]]]) -> None:
    for url, data, stored, _ in results:
        assert hashlib.sha256(stored).hexdigest() == hashlib.sha256(data).hexdigest(), url


async def test_four_http3_clients_land_two_on_each_worker(server_factory: ServerFactory, tmp_path: Path) -> None:
    """New connections go to the workers in turn (a Retry names the next one), whatever the clients'
    ports: 4 concurrent clients, 2 on each worker, every upload intact, each worker >= 30 % of the CPU."""
    server, certfile = https_server(server_factory, tmp_path, "--http3", "--workers", "2")
    server.wait_for_workers(2)
    pids = worker_pids(server)
    assert len(pids) == 2
    before = {pid: cpu_seconds(pid) for pid in pids}
    results = await asyncio.gather(*(one_client_uploads(server, certfile, i) for i in range(4)))
    assert_intact(results)
    owners = sorted(worker_of(cids[0], 2) for *_, cids in results)
    assert owners == [0, 0, 1, 1]
    spent = {pid: cpu_seconds(pid) - before[pid] for pid in pids}
    assert min(spent.values()) >= 0.3 * sum(spent.values()), f"shares {spent}"


async def test_every_connection_id_a_worker_issues_names_it(server_factory: ServerFactory, tmp_path: Path) -> None:
    """The first connection id and all of those announced later (NEW_CONNECTION_ID) of one connection
    name the same worker, so the steering program delivers whichever the client uses to it."""
    server, certfile = https_server(server_factory, tmp_path, "--http3", "--workers", "2")
    server.wait_for_workers(2)
    results = await asyncio.gather(*(one_client_uploads(server, certfile, i) for i in range(3)))
    assert_intact(results)
    # One connection's first id names the right worker by chance half the time when it is drawn at random
    # (the fix off), so many connections are checked: a lucky pass is 2**-19 likely, not 1 in 8.
    light = await asyncio.gather(*(connection_ids_of_one_request(server, certfile) for _ in range(16)))
    for cids in [*(result[3] for result in results), *light]:
        assert len(cids) >= 2
        assert {worker_of(cid, 2) for cid in cids} == {worker_of(cids[0], 2)}, [cid.hex() for cid in cids]


async def connection_ids_of_one_request(server: ServerProcess, certfile: Path) -> list[bytes]:
    """The connection ids the server gave a new connection that made one OPTIONS request."""
    transport = H3Transport(verify=str(certfile))
    async with httpx.AsyncClient(transport=transport, timeout=20) as client:
        answered = await client.options(server.url)
        assert answered.status_code == 204 and answered.http_version == "HTTP/3"
        (connection,) = transport._connections.values()
        quic = connection.protocol._quic
        return [quic._peer_cid.cid, *(cid.cid for cid in quic._peer_cid_available)]


def udp_socket_inode(pid: int, port: int) -> int:
    """The inode of the UDP socket on ``port`` that process ``pid`` holds."""
    on_port = set()
    for line in Path("/proc/net/udp").read_text().splitlines()[1:]:
        fields = line.split()
        if int(fields[1].split(":")[1], 16) == port:
            on_port.add(int(fields[9]))
    held = {int(link[8:-1]) for fd in Path(f"/proc/{pid}/fd").iterdir()
            if (link := os.readlink(fd)).startswith("socket:[")}  # fmt: skip
    (inode,) = on_port & held
    return inode


def queued_bytes(inode: int) -> int:
    for line in Path("/proc/net/udp").read_text().splitlines()[1:]:
        fields = line.split()
        if int(fields[9]) == inode:
            return int(fields[4].split(":")[1], 16)
    raise LookupError(inode)


def test_a_datagram_naming_a_worker_reaches_it_from_any_source_port(
    server_factory: ServerFactory, tmp_path: Path
) -> None:
    """A short-header datagram whose connection id names worker 1 waits in worker 1's socket, sent from
    32 source ports (a client after NAT rebinding); one naming worker 0 in worker 0's. The workers are
    stopped (SIGSTOP) meanwhile, so what each socket holds is what the kernel gave it."""
    server, _ = https_server(server_factory, tmp_path, "--http3", "--workers", "2")
    server.wait_for_workers(2)
    pids = worker_pids(server)
    # worker index = the order the parent started them in, which is the pid order here (spawned one by one)
    inodes = [udp_socket_inode(pid, server.port) for pid in pids]
    for pid in pids:
        os.kill(pid, signal.SIGSTOP)
    try:
        sent = [0, 0]
        for worker in (1, 0, 1):
            for _ in range(32):
                with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
                    sender.sendto(bytes([0x40]) + new_cid(worker, 2) + bytes(40), ("127.0.0.1", server.port))
                sent[worker] += 1
            wait_for(
                lambda: [queued_bytes(inode) > 0 for inode in inodes] == [bool(n) for n in sent],
                f"datagrams queued on the sockets of the workers named ({sent})",
            )
        assert queued_bytes(inodes[0]) < queued_bytes(inodes[1])
    finally:
        for pid in pids:
            os.kill(pid, signal.SIGCONT)


class RebindingRelay(asyncio.DatagramProtocol):
    """client -> relay -> server over UDP, sending on to the server from a new source port every
    ``every`` datagrams and closing the old one (a NAT that rebinds); answers go back to the client."""

    def __init__(self, server: tuple[str, int], every: int) -> None:
        self.server = server
        self.every = every
        self.count = 0
        self.rebinds = 0
        self.front: asyncio.DatagramTransport | None = None
        self.client: tuple[str, int] | None = None
        self.upstream: socket.socket | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.front = transport  # type: ignore[assignment]  # a datagram endpoint's

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.client = addr
        self.count += 1
        if self.upstream is not None and self.count % self.every == 0:
            self.close_upstream()
            self.rebinds += 1
        if self.upstream is None:
            self.upstream = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            self.upstream.bind(("127.0.0.1", 0))
            self.upstream.setblocking(False)
            asyncio.get_running_loop().add_reader(self.upstream.fileno(), self._answer, self.upstream)
        with contextlib.suppress(BlockingIOError):
            self.upstream.sendto(data, self.server)

    def _answer(self, upstream: socket.socket) -> None:
        with contextlib.suppress(BlockingIOError):
            while True:
                answer = upstream.recv(65536)
                if self.front is not None and self.client is not None:
                    self.front.sendto(answer, self.client)

    def close_upstream(self) -> None:
        if self.upstream is not None:
            asyncio.get_running_loop().remove_reader(self.upstream.fileno())
            self.upstream.close()
            self.upstream = None


async def test_an_http3_upload_survives_the_clients_address_changing_over_two_workers(
    server_factory: ServerFactory, tmp_path: Path
) -> None:
    """The client's source port changes every 300 datagrams of an upload (NAT rebinding through a relay); every
    datagram still reaches the worker that holds the connection, QUIC validates the new path, and the
    upload is intact (with the kernel's address hash, each change had an even chance of a worker that
    does not know the connection)."""
    server, certfile = https_server(server_factory, tmp_path, "--http3", "--workers", "2")
    server.wait_for_workers(2)
    loop = asyncio.get_running_loop()
    relay = RebindingRelay(("127.0.0.1", server.port), every=300)
    front, _ = await loop.create_datagram_endpoint(lambda: relay, local_addr=("127.0.0.1", 0))
    try:
        port = front.get_extra_info("sockname")[1]
        endpoint = f"https://127.0.0.1:{port}{server.base_path}"
        results = [await one_client_uploads(server, certfile, 7, endpoint)]
    finally:
        front.close()
        relay.close_upstream()
    assert_intact(results)
    assert relay.rebinds >= 5


async def test_with_hash_steering_http3_workers_serve_without_retry(
    server_factory: ServerFactory, tmp_path: Path
) -> None:
    """--http3-steering hash (what a node falls back to where the kernel refuses the program): the
    kernel's address hash picks the worker, no Retry, and every upload is intact."""
    server, certfile = https_server(server_factory, tmp_path, "--http3", "--workers", "2", "--http3-steering", "hash")
    server.wait_for_workers(2)
    results = await asyncio.gather(*(one_client_uploads(server, certfile, i) for i in range(4)))
    assert_intact(results)


def test_an_http3_server_with_workers_announces_the_one_port_it_serves_quic_on(
    server_factory: ServerFactory, tmp_path: Path
) -> None:
    server, certfile = https_server(server_factory, tmp_path, "--http3", "--workers", "2")
    response = httpx.options(server.url, headers=TUS, verify=ssl_context_for(certfile))
    assert response.headers.get_list("alt-svc") == [f'h3=":{server.port}"; ma=3600']
