"""HTTP/3 under concurrency and loss: many uploads on one QUIC connection at once, while small requests keep the
server sending (each send re-arms the connection's QUIC timer) and the uploads' datagrams keep coming, and
every upload's bytes compared by SHA-256.

Hypercorn's timer task and its datagram loop both deliver a connection's events and can be suspended in
the middle (a body chunk waits for room in its app's queue); the timer task is also cancelled whenever the
timer is re-armed. Body chunks could so arrive out of order or be lost, and an upload end short or
scrambled while answered 204. ``quic-batched-loop`` gives each connection one task that alone delivers its
events; this test fails with that fix off (tests/server/test_hypercorn_fixes.py)."""

from __future__ import annotations

import asyncio
import hashlib
import random
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
from server_process import ServerFactory
from tls_servers import https_server

from tusedge.client.http3 import H3Transport
from tusedge.tls import ssl_context_for

MiB = 1024 * 1024
TUS = {"Tus-Resumable": "1.0.0"}
OCTETS = {**TUS, "Content-Type": "application/offset+octet-stream"}
UPLOADS = 16
UPLOAD_BYTES = 2 * MiB
ROUNDS = 1


def payload(seed: int) -> bytes:
    return random.Random(seed).randbytes(UPLOAD_BYTES + seed * 4099)  # lengths differ: no two alike


async def upload(client: httpx.AsyncClient, endpoint: str, data: bytes) -> tuple[str, list[int]]:
    """Create, PATCH all of it in one request; after anything but 204 resume from the server's offset, as a
    tus client does. Returns the URL and the statuses seen."""
    created = await client.post(endpoint, headers={**TUS, "Upload-Length": str(len(data))})
    assert created.status_code == 201, created.text
    url = created.headers["Location"]
    statuses = []
    offset = 0
    for _ in range(6):
        response = await client.patch(url, content=data[offset:], headers={**OCTETS, "Upload-Offset": str(offset)})
        statuses.append(response.status_code)
        if response.status_code == 204 and int(response.headers["Upload-Offset"]) == len(data):
            break
        head = await client.head(url, headers=TUS)
        offset = int(head.headers["Upload-Offset"])
    return url, statuses


async def hammer(client: httpx.AsyncClient, endpoint: str, stop: asyncio.Event) -> int:
    """Small requests back to back on the same connection: every answer is a send, which re-arms the timer."""
    count = 0
    while not stop.is_set():
        response = await client.options(endpoint, headers=TUS)
        assert response.status_code in (200, 204)
        count += 1
    return count


async def test_concurrent_http3_uploads_under_timer_and_datagram_load_are_byte_exact(
    server_factory: ServerFactory, tmp_path: Path
) -> None:
    server, certfile = https_server(server_factory, tmp_path, "--http3")
    transport = H3Transport(verify=str(certfile))
    async with httpx.AsyncClient(transport=transport, timeout=120) as client:
        for round_ in range(ROUNDS):
            datas = [payload(round_ * UPLOADS + i) for i in range(UPLOADS)]
            stop = asyncio.Event()
            hammers = [asyncio.ensure_future(hammer(client, server.url, stop)) for _ in range(4)]
            try:
                results = await asyncio.gather(*(upload(client, server.url, data) for data in datas))
            finally:
                stop.set()
                answered = await asyncio.gather(*hammers)
            assert sum(answered) > 0
            for (url, statuses), data in zip(results, datas, strict=True):
                stored = (server.data_dir / "uploads" / url.rsplit("/", 1)[1]).read_bytes()
                assert (len(stored), hashlib.sha256(stored).hexdigest()) == (
                    len(data),
                    hashlib.sha256(data).hexdigest(),
                ), f"{url} ({statuses}) does not hold what was sent"


async def wait_for_patches_in_progress(origin: str, certfile: Path, count: int, timeout_s: float = 30) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    async with httpx.AsyncClient(verify=ssl_context_for(certfile)) as plain:
        while f"tusedge_patches_in_progress {count:.1f}" not in (await plain.get(f"{origin}/metrics")).text:
            assert asyncio.get_running_loop().time() < deadline, f"no {count} PATCH in progress"
            await asyncio.sleep(0.05)


async def test_an_http3_request_waiting_for_its_app_holds_up_no_other_quic_connection(
    server_factory: ServerFactory, tmp_path: Path
) -> None:
    """A PATCH whose app waits (here for the lock another request holds) stops reading its body, so its
    chunks wait in QUIC. Hypercorn's one datagram loop waited with it, and no other HTTP/3 connection of
    the process was served until that app went on; with the batched loop only that connection waits."""
    server, certfile = https_server(
        server_factory, tmp_path, "--http3", "--lock-timeout-s", "40", "--stale-lock-s", "60"
    )
    release = asyncio.Event()

    async def trickle() -> AsyncIterator[bytes]:
        yield b"x" * 10
        await release.wait()

    async def big_body(handed: asyncio.Event) -> AsyncIterator[bytes]:
        for i in range(64):
            yield b"y" * (64 * 1024)
            if i == 1:  # 128 KiB handed to QUIC: far more than the app's queue of 10 chunks holds
                handed.set()

    async with (
        httpx.AsyncClient(verify=ssl_context_for(certfile), timeout=60) as tcp,
        httpx.AsyncClient(transport=H3Transport(verify=str(certfile)), timeout=60) as waiting_client,
        httpx.AsyncClient(transport=H3Transport(verify=str(certfile)), timeout=8) as other_client,
    ):
        created = await tcp.post(server.url, headers={**TUS, "Upload-Length": str(8 * MiB)})
        url = created.headers["Location"]
        holder = asyncio.ensure_future(tcp.patch(url, content=trickle(), headers={**OCTETS, "Upload-Offset": "0"}))
        await wait_for_patches_in_progress(server.origin, certfile, 1)  # the lock is held
        await other_client.options(server.url, headers=TUS)  # its QUIC connection is up
        handed = asyncio.Event()
        waiting = asyncio.ensure_future(
            waiting_client.patch(url, content=big_body(handed), headers={**OCTETS, "Upload-Offset": "0"})
        )
        await asyncio.wait_for(handed.wait(), 30)
        try:
            for _ in range(5):  # each answered within other_client's 8 s timeout, while the other waits
                answered = await other_client.post(server.url, headers={**TUS, "Upload-Length": "1"})
                assert answered.status_code == 201
            assert not waiting.done()
        finally:
            release.set()
            await asyncio.gather(holder, waiting, return_exceptions=True)


async def test_http3_uploads_through_a_lossy_udp_path_are_byte_exact(
    server_factory: ServerFactory, tmp_path: Path
) -> None:
    """Every HTTP/3 upload byte-exact when datagrams are lost both ways: a relay (benchmarks/linkmodel.py)
        drops 3 % of them at random (tests/test_link_model.py checks it does); QUIC's recovery resends, and
    nothing else may give."""
    from benchmarks.linkmodel import PathModel, RelayProcess

    server, certfile = https_server(server_factory, tmp_path, "--http3")
    with RelayProcess(PathModel(loss=0.03, seed=14), ("127.0.0.1", server.port), udp=True) as relay:
        endpoint = f"{relay.origin('https')}{server.base_path}"
        datas = [payload(100 + i)[: MiB + i * 7919] for i in range(6)]
        async with (
            httpx.AsyncClient(transport=H3Transport(verify=str(certfile)), timeout=120) as one,
            httpx.AsyncClient(transport=H3Transport(verify=str(certfile)), timeout=120) as other,
        ):
            results = await asyncio.gather(
                *(upload(one if i % 2 else other, endpoint, data) for i, data in enumerate(datas))
            )
    for (url, statuses), data in zip(results, datas, strict=True):
        assert url.startswith(endpoint)  # through the relay
        stored = (server.data_dir / "uploads" / url.rsplit("/", 1)[1]).read_bytes()
        assert hashlib.sha256(stored).hexdigest() == hashlib.sha256(data).hexdigest(), f"{url} ({statuses})"
