"""A reverse proxy in a child process (nginx, Caddy) in front of tusedge nodes: listening on 127.0.0.1, a free
port, with its files in a temporary folder; started with ``start()`` once it knows its upstreams, stopped by
its process group. Subclasses say how to configure and run it."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Self

import pytest


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class LocalEndpoint:
    """``origin`` and ``url`` (the creation endpoint, ``/files/``) of something that listens on 127.0.0.1 at
    ``port``: a proxy in front of tusedge, a container."""

    port: int

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"{self.origin}/files/"


class ProxyProcess(LocalEndpoint):
    """``upstream_ports``: one per tusedge node (the proxy takes turns between them). They may be set after
    construction, before ``start()``, so that a node can be told the proxy's URL before the node starts."""

    name = "proxy"
    package = "?"
    stop_signal = signal.SIGTERM

    def __init__(self, *upstream_ports: int) -> None:
        binary = shutil.which(self.name) or next(
            (str(p) for p in (Path("/usr/sbin") / self.name, Path("/usr/bin") / self.name) if p.exists()), None
        )
        if binary is None:
            pytest.fail(f"{self.name} is not installed (apt-get install -y {self.package}); .ci/run installs it",
                        pytrace=False)  # fmt: skip
        self.binary = binary
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix=f"tusedge-{self.name}-"))
        self.upstream_ports = list(upstream_ports)
        self.proc: subprocess.Popen[bytes] | None = None

    def command(self) -> tuple[list[str], dict[str, str]]:
        """Write the configuration (for ``upstream_ports``); return the command line and extra environment."""
        raise NotImplementedError

    def log(self) -> str:
        path = self.root / "proxy.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def start(self) -> Self:
        assert self.upstream_ports, "no upstream"
        cmd, env = self.command()
        with open(self.root / "proxy.log", "wb") as out:
            self.proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **env},
                                         start_new_session=True)  # fmt: skip
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return self
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"{self.name} did not start:\n" + self.log()) from None
                time.sleep(0.05)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, self.stop_signal)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
        shutil.rmtree(self.root, ignore_errors=True)
