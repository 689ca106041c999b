"""tusedge behind a real Caddy (Debian's 2.6) running examples/caddy/Caddyfile as an https site: Caddy
terminates TLS and HTTP/3 (and HTTP/2) and speaks HTTP/1.1 to tusedge (--trust-proxy). The protocol holds
through it, Location names the front, bodies stream (a body cut off at the client keeps what reached
tusedge), an HTTP/3 body Caddy 2.6 drops is refused instead of taken as empty, and Chromium uploads
parallel parts over QUIC through it."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import random
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from caddy_server import CaddyTlsProxy
from quic_browser import CHROMIUM, page_server, quic_response_headers, run_chromium_over_quic
from server_process import ROOT, ServerFactory, ServerProcess
from tls_servers import make_cert

from tusedge.client.http3 import H3Transport
from tusedge.tls import ssl_context_for

MiB = 1024 * 1024
TUS = {"Tus-Resumable": "1.0.0"}
OCTETS = {**TUS, "Content-Type": "application/offset+octet-stream"}


@pytest.fixture
def front(server_factory: ServerFactory, tmp_path: Path) -> Iterator[tuple[ServerProcess, CaddyTlsProxy, Path]]:
    certfile, keyfile = make_cert(tmp_path)
    server = server_factory("--trust-proxy", "--commit-interval-bytes", "1MiB", "--commit-interval-s", "0",
                            "--write-buffer-bytes", "256KiB",
                            "--max-size-bytes", str(10**9))  # fmt: skip
    proxy = CaddyTlsProxy(certfile, keyfile, server.port).start()
    try:
        yield server, proxy, certfile
    finally:
        proxy.stop()


def h3(certfile: Path) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=H3Transport(verify=str(certfile)), timeout=60)


def h2(certfile: Path) -> httpx.AsyncClient:
    return httpx.AsyncClient(http2=True, verify=ssl_context_for(certfile), timeout=60)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


async def test_over_http3_location_names_the_front_and_the_upload_is_intact(
    front: tuple[ServerProcess, CaddyTlsProxy, Path],
) -> None:
    server, proxy, certfile = front
    data = random.Random(3).randbytes(5 * MiB + 3)
    async with h3(certfile) as client:
        created = await client.post(proxy.url, headers={**TUS, "Upload-Length": str(len(data))})
        assert created.status_code == 201 and created.http_version == "HTTP/3"
        url = created.headers["Location"]
        assert url.startswith(f"https://127.0.0.1:{proxy.port}/files/")
        patched = await client.patch(url, content=data, headers={**OCTETS, "Upload-Offset": "0"})
        assert patched.status_code == 204 and patched.headers["Upload-Offset"] == str(len(data))
    async with h2(certfile) as client:
        stored = await client.get(url)
        assert stored.http_version == "HTTP/2"
    assert sha(stored.content) == sha(data)
    assert sha((server.data_dir / "uploads" / url.rsplit("/", 1)[1]).read_bytes()) == sha(data)


def test_the_conformance_suite_passes_through_caddy(front: tuple[ServerProcess, CaddyTlsProxy, Path]) -> None:
    """Every tus rule, over https through the front (the suite speaks HTTP/1.1; --insecure for the loopback
    certificate)."""
    _, proxy, _ = front
    done = subprocess.run([sys.executable, "-m", "conformance", proxy.url, "--json", "--insecure"], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    results = json.loads(done.stdout)["results"]
    failed = [r for r in results if r["status"] == "FAIL"]
    assert done.returncode == 0 and not failed, failed
    assert sum(r["status"] == "PASS" for r in results) >= 30


async def chunks(data: bytes, piece: int = 256 * 1024) -> AsyncIterator[bytes]:
    for start in range(0, len(data), piece):
        yield data[start : start + piece]


async def test_an_http3_body_without_content_length_is_refused_loudly_not_taken_as_empty(
    front: tuple[ServerProcess, CaddyTlsProxy, Path],
) -> None:
    """Caddy 2.6 passes an HTTP/3 body sent without Content-Length on as empty (Content-Length: 0). The
    example's Tusedge-Front-Protocol header tells tusedge the client spoke HTTP/3: it answers 411 and logs
    why, and the offset stays where it was, instead of 204 for bytes it never saw. With Content-Length, or
    over HTTP/2 (chunked to tusedge), the same streamed body goes through."""
    server, proxy, certfile = front
    data = random.Random(5).randbytes(MiB)
    async with h3(certfile) as client:
        created = await client.post(proxy.url, headers={**TUS, "Upload-Length": str(2 * len(data))})
        url = created.headers["Location"]
        refused = await client.patch(url, content=chunks(data), headers={**OCTETS, "Upload-Offset": "0"})
        assert refused.status_code == 411
        assert "Content-Length" in refused.text and "HTTP/3" in refused.text
        assert (await client.head(url, headers=TUS)).headers["Upload-Offset"] == "0"
        sized = await client.patch(
            url, content=chunks(data), headers={**OCTETS, "Upload-Offset": "0", "Content-Length": str(len(data))}
        )
        assert sized.status_code == 204 and sized.headers["Upload-Offset"] == str(len(data))
    async with h2(certfile) as client:
        streamed = await client.patch(url, content=chunks(data), headers={**OCTETS, "Upload-Offset": str(len(data))})
        assert streamed.status_code == 204 and streamed.http_version == "HTTP/2"
    assert sha((server.data_dir / "uploads" / url.rsplit("/", 1)[1]).read_bytes()) == sha(data + data)
    assert any("reached the front over HTTP/3" in line for line in server.log)


async def test_an_http3_body_cut_off_at_the_client_keeps_what_reached_tusedge(
    front: tuple[ServerProcess, CaddyTlsProxy, Path],
) -> None:
    server, proxy, certfile = front
    data = random.Random(7).randbytes(8 * MiB)
    sent_enough = asyncio.Event()

    async def cut_off() -> AsyncIterator[bytes]:
        async for piece in chunks(data[: 3 * MiB]):
            yield piece
        sent_enough.set()
        await asyncio.Event().wait()  # never ends: the request is cancelled

    async with h3(certfile) as client:
        created = await client.post(proxy.url, headers={**TUS, "Upload-Length": str(len(data))})
        url = created.headers["Location"]
        patching = asyncio.ensure_future(
            client.patch(
                url, content=cut_off(), headers={**OCTETS, "Upload-Offset": "0", "Content-Length": str(len(data))}
            )
        )
        await asyncio.wait_for(sent_enough.wait(), 30)
        deadline = time.monotonic() + 20
        # tusedge commits each MiB as it comes: what reached it shows while the request still runs
        while int((await client.head(url, headers=TUS)).headers["Upload-Offset"]) < MiB:
            assert time.monotonic() < deadline, "tusedge saw nothing of the body while it was being sent"
            await asyncio.sleep(0.05)
        patching.cancel()  # the client's stream is reset; Caddy ends the request to tusedge
        with contextlib.suppress(asyncio.CancelledError):
            await patching
        for _ in range(20):  # what a tus client does: HEAD, PATCH the rest; again while the old request ends
            kept = int((await client.head(url, headers=TUS)).headers["Upload-Offset"])
            rest = await client.patch(url, content=data[kept:], headers={**OCTETS, "Upload-Offset": str(kept)})
            if rest.status_code not in (409, 423):
                break
        assert rest.status_code == 204, rest.text
        assert MiB <= kept <= 3 * MiB, kept
    assert sha((server.data_dir / "uploads" / url.rsplit("/", 1)[1]).read_bytes()) == sha(data)


_PAGE = """<!doctype html><meta charset="utf-8"><script>
(async () => {
  const params = new URLSearchParams(location.search);
  const endpoint = params.get("endpoint"), size = Number(params.get("size")), parts = Number(params.get("parts"));
  const report = (result) => fetch("/result", {method: "POST", body: JSON.stringify(result)});
  try {
    const data = new Uint8Array(size);
    for (let i = 0; i < size; i++) data[i] = (i * 31 + 7) & 255;
    const tus = {"Tus-Resumable": "1.0.0"};
    const step = Math.ceil(size / parts);
    const statuses = await Promise.all([...Array(parts).keys()].map(async (i) => {
      const body = data.slice(i * step, Math.min(size, (i + 1) * step));
      const created = await fetch(endpoint, {method: "POST", headers: {...tus, "Upload-Concat": "partial",
        "Upload-Length": String(body.length)}});
      const url = created.headers.get("Location");
      const patched = await fetch(url, {method: "PATCH", body, headers: {...tus, "Upload-Offset": "0",
        "Content-Type": "application/offset+octet-stream"}});
      return [url, created.status, patched.status];
    }));
    const final = await fetch(endpoint, {method: "POST", headers: {...tus,
      "Upload-Concat": "final;" + statuses.map((s) => s[0]).join(" ")}});
    await report({url: final.headers.get("Location"), statuses: statuses.map((s) => s.slice(1)),
                  final: final.status});
  } catch (error) {
    await report({error: String(error)});
  }
})();
</script>"""


@pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (Debian: apt-get install chromium)")
def test_chromium_uploads_parallel_parts_over_quic_through_caddy(
    front: tuple[ServerProcess, CaddyTlsProxy, Path], tmp_path: Path
) -> None:
    """Headless Chromium, QUIC forced for the front's origin and the loopback certificate pinned by SPKI,
    uploads 4 partial uploads at once (one QUIC connection, as tus-js-client's parallel parts) and the
    final; its net log shows Caddy's answers came over QUIC; the final holds exactly what the page sent."""
    assert CHROMIUM is not None
    _, proxy, certfile = front
    size, parts = 6_000_001, 4
    expected = bytes((i * 31 + 7) & 255 for i in range(size))
    netlog = tmp_path / "netlog.json"
    with page_server(_PAGE) as (page_port, results):
        page = f"http://127.0.0.1:{page_port}/?endpoint={proxy.url}&size={size}&parts={parts}"
        run_chromium_over_quic(
            page,
            certfile=certfile,
            quic_port=proxy.port,
            profile=tmp_path / "profile",
            netlog=netlog,
            results=results,
            timeout_s=120,
        )
    assert results, "the page never reported back"
    result = results[0]
    assert "error" not in result, result
    assert result["statuses"] == [[201, 204]] * parts and result["final"] == 201, result
    assert result["url"].startswith(f"https://127.0.0.1:{proxy.port}/files/")
    answers = quic_response_headers(netlog)
    patched = [h for h in answers if ":status: 204" in h and any(x.startswith("upload-offset:") for x in h)]
    assert len(patched) >= parts, "Chromium did not get the PATCH answers over QUIC"
    assert any(x.lower().startswith("server: caddy") for x in patched[0]), patched[0]  # Caddy answered over QUIC
    stored = httpx.get(result["url"], verify=ssl_context_for(certfile), timeout=60)
    assert sha(stored.content) == sha(expected)
