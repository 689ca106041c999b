"""Node-sticky upload URLs (--public-url): two nodes that share nothing, each a tusedge behind its own proxy,
and a front that takes turns between them (the stand-in for Anycast or regional DNS). Each node names itself
in every Location and in the part URLs of a final's Upload-Concat, so a client resumes on the node that
holds its bytes, and our client makes every part of a parallel upload, and its final, on the node that took
the first. Run through real nginx (examples/nginx/tusedge.conf) and real Caddy proxies."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from caddy_server import CaddyProxy
from nginx_server import NginxProxy
from proxy_process import ProxyProcess
from rawhttp import TUS, create_upload, head_offset, patch
from server_process import ROOT, ServerFactory, ServerProcess
from upload_files import random_file, served_sha256

from tusedge.client.fingerprint import fingerprint
from tusedge.client.resume import ResumeStore

MIB = 1024 * 1024
Proxy = ProxyProcess


@dataclass
class Node:
    server: ServerProcess
    proxy: Proxy

    def holds(self, url: str) -> bool:
        return (self.server.data_dir / "uploads" / url.rsplit("/", 1)[1]).exists()


@dataclass
class Edge:
    front: Proxy
    nodes: list[Node]

    def node_of(self, url: str) -> Node:
        (node,) = [node for node in self.nodes if url.startswith(node.proxy.url)]
        return node


@pytest.fixture(params=["nginx", "caddy"])
def edge(request: pytest.FixtureRequest, server_factory: ServerFactory) -> Iterator[Edge]:
    kind: type[ProxyProcess] = NginxProxy if request.param == "nginx" else CaddyProxy
    proxies: list[Proxy] = []
    try:
        nodes = []
        for _ in range(2):
            proxy = kind()
            proxies.append(proxy)
            server = server_factory("--trust-proxy", "--public-url", proxy.origin)
            proxy.upstream_ports = [server.port]
            nodes.append(Node(server, proxy.start()))
        front = kind(*(node.proxy.port for node in nodes))
        proxies.append(front)
        yield Edge(front.start(), nodes)
    finally:
        for proxy in proxies:
            proxy.stop()


def test_every_location_names_the_node_that_holds_the_upload(edge: Edge) -> None:
    took = set()
    for _ in range(4):  # the front takes turns: both nodes get uploads
        url = create_upload(edge.front.url, 5)
        node = edge.node_of(url)  # never the front, although --trust-proxy sees its X-Forwarded-Host
        took.add(node.proxy.port)
        assert node.holds(url)
        assert patch(url, 0, b"hello").status_code == 204
        assert head_offset(url) == 5
    assert took == {node.proxy.port for node in edge.nodes}

    # Why it matters: through the front, one of two requests reaches the node without the upload.
    through_front = edge.front.url + url.rsplit("/", 1)[1]
    assert {httpx.head(through_front, headers=TUS).status_code for _ in range(2)} == {200, 404}


def test_a_parallel_upload_through_the_front_is_made_and_joined_on_one_node(edge: Edge, tmp_path: Path) -> None:
    source = tmp_path / "file.bin"
    digest = random_file(source, 6 * MIB)
    done = subprocess.run([sys.executable, "-m", "tusedge", "upload", str(source), edge.front.url, "--parallel", "3",
                           "--no-resume"], cwd=ROOT, capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr
    final = done.stdout.strip()
    node = edge.node_of(final)
    concat = httpx.head(final, headers=TUS).headers["Upload-Concat"]
    parts = concat.removeprefix("final;").split()
    assert len(parts) == 3 and all(part.startswith(node.proxy.url) for part in parts), concat
    assert served_sha256(final) == digest
    other = next(n for n in edge.nodes if n is not node)
    assert not list((other.server.data_dir / "uploads").iterdir())


def test_a_killed_client_resumes_on_the_node_that_holds_its_bytes(edge: Edge, tmp_path: Path) -> None:
    """The client's resume store keeps the node's URLs; run again, it continues there (the front would send
    half of its requests to the other node)."""
    source, store = tmp_path / "file.bin", tmp_path / "store.db"
    size = 16 * MIB
    digest = random_file(source, size)
    args = [sys.executable, "-m", "tusedge", "upload", str(source), edge.front.url, "--parallel", "2",
            "--chunk-size", "1MiB", "--store", str(store)]  # fmt: skip
    proc = subprocess.Popen([*args, "--limit-rate", "4MiB"], cwd=ROOT, text=True, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while (stored := ResumeStore(store).get(fingerprint(source), edge.front.url)) is None or sum(
            head_offset(url) for url in stored.parts
        ) < 2 * MIB:
            assert proc.poll() is None and time.monotonic() < deadline, "no progress"
            time.sleep(0.05)
    finally:
        proc.kill()
        proc.communicate(timeout=30)
    node = edge.node_of(stored.parts[0])
    assert all(node.holds(url) for url in stored.parts)
    again = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stderr
    assert "already on the server" in again.stderr
    assert edge.node_of(again.stdout.strip()) is node
    assert served_sha256(again.stdout.strip()) == digest
