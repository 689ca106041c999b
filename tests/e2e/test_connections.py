"""HTTP/2 carries every request of a client on one connection, so a path that caps each connection caps all
parallel parts together. ``tusedge upload --http2 --parallel N`` therefore spreads the parts over N
connections by default, and ``--connections 1`` keeps them on one; counted by the link model relay in
front of a real server (each TCP connection through it is one flow)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from server_process import ROOT, ServerProcess
from upload_files import random_file, served_sha256

from benchmarks.linkmodel import PathModel, RelayProcess

MIB = 1024 * 1024


@pytest.mark.parametrize(("extra", "connections"), [([], 3), (["--connections", "1"], 1), (["--connections", "2"], 2)])
def test_http2_parts_are_spread_over_connections(
    tusedge_server: ServerProcess, tmp_path: Path, extra: list[str], connections: int
) -> None:
    source = tmp_path / "file.bin"
    digest = random_file(source, 6 * MIB)
    with RelayProcess(PathModel(), ("127.0.0.1", tusedge_server.port)) as relay:
        endpoint = relay.origin() + "/files/"
        done = subprocess.run(
            [sys.executable, "-m", "tusedge", "upload", str(source), endpoint, "--http2", "--parallel", "3",
             "--no-resume", "--quiet", *extra],
            cwd=ROOT, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        # Every connection the client made went through the relay, which reports each as it opens.
        assert relay.tcp_flows() == connections, relay.flows
        assert served_sha256(done.stdout.strip()) == digest
