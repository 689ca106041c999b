"""``--http3 --workers N``: each worker reads its own UDP socket of one SO_REUSEPORT group on the port, so
the kernel keeps every QUIC connection on one worker (it hashes the address 4-tuple) and concurrent HTTP/3
clients spread over the workers. Which worker served is read from each worker's CPU time in /proc."""

from __future__ import annotations

import asyncio
import hashlib
import os
import random
from pathlib import Path

import httpx
from server_process import ServerFactory, ServerProcess
from tls_servers import https_server

from tusedge.client.http3 import H3Transport
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


async def one_client_uploads(server: ServerProcess, certfile: Path, seed: int) -> tuple[str, bytes, bytes]:
    """One HTTP/3 client (its own QUIC connection, its own UDP port) uploads 2 MiB in one PATCH."""
    data = random.Random(seed).randbytes(2 * MiB + seed)
    async with httpx.AsyncClient(transport=H3Transport(verify=str(certfile)), timeout=120) as client:
        created = await client.post(server.url, headers={**TUS, "Upload-Length": str(len(data))})
        assert created.status_code == 201 and created.http_version == "HTTP/3"
        url = created.headers["Location"]
        patched = await client.patch(url, content=data, headers={**OCTETS, "Upload-Offset": "0"})
        assert patched.status_code == 204 and patched.headers["Upload-Offset"] == str(len(data))
        stored = (await client.get(url)).content
    return url, data, stored


async def test_http3_clients_spread_over_workers_and_every_upload_is_intact(
    server_factory: ServerFactory, tmp_path: Path
) -> None:
    server, certfile = https_server(server_factory, tmp_path, "--http3", "--workers", "2")
    server.wait_for_workers(2)  # both have bound their UDP socket: until then every datagram goes to one
    pids = worker_pids(server)
    assert len(pids) == 2
    before = {pid: cpu_seconds(pid) for pid in pids}
    spent: dict[int, float] = {}
    # Rounds of 4 concurrent clients until both workers carried uploads: each client lands on either
    # worker with probability 1/2, so 4 rounds leave a 2 ** -15 chance of one worker getting all 16.
    for round_ in range(4):
        results = await asyncio.gather(*(one_client_uploads(server, certfile, round_ * 4 + i) for i in range(4)))
        for url, data, stored in results:
            assert hashlib.sha256(stored).hexdigest() == hashlib.sha256(data).hexdigest(), url
        spent = {pid: cpu_seconds(pid) - before[pid] for pid in pids}
        # A worker that served nothing spends next to no CPU (its reaper); one 2 MiB HTTP/3 upload costs
        # a few tenths of a second.
        if min(spent.values()) > 0.25 * max(spent.values()):
            break
    assert min(spent.values()) > 0.25 * max(spent.values()), f"one worker carried the traffic: {spent}"


def test_an_http3_server_with_workers_announces_the_one_port_it_serves_quic_on(
    server_factory: ServerFactory, tmp_path: Path
) -> None:
    server, certfile = https_server(server_factory, tmp_path, "--http3", "--workers", "2")
    response = httpx.options(server.url, headers=TUS, verify=ssl_context_for(certfile))
    assert response.headers.get_list("alt-svc") == [f'h3=":{server.port}"; ma=3600']
