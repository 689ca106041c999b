"""A real nginx (Debian's) in front of a tusedge server, configured by examples/nginx/tusedge.conf with only
its listen port and upstream address swapped, listening on 127.0.0.1, a free port; stopped by PID."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
from server_process import ROOT

EXAMPLE = ROOT / "examples" / "nginx" / "tusedge.conf"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class NginxProxy:
    def __init__(self, upstream_port: int) -> None:
        binary = shutil.which("nginx") or ("/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None)
        if binary is None:
            pytest.fail("nginx is not installed (apt-get install -y nginx); .ci/run installs it", pytrace=False)
        self.binary = binary
        self.port = _free_port()
        self.root = Path(tempfile.mkdtemp(prefix="tusedge-nginx-"))
        site = EXAMPLE.read_text()
        site = site.replace("server 127.0.0.1:1080;", f"server 127.0.0.1:{upstream_port};")
        site = site.replace("listen 80;", f"listen 127.0.0.1:{self.port};")
        assert str(self.port) in site and str(upstream_port) in site, "the example's addresses moved"
        temp = "\n".join(f"    {kind}_temp_path {self.root}/{kind};" for kind in ("client_body", "proxy", "fastcgi",
                                                                                    "uwsgi", "scgi"))  # fmt: skip
        user = "user root;\n" if os.geteuid() == 0 else ""
        (self.root / "nginx.conf").write_text(
            f"{user}worker_processes 1;\ndaemon off;\npid {self.root}/nginx.pid;\n"
            f"error_log {self.root}/error.log info;\nevents {{ worker_connections 256; }}\n"
            f"http {{\n    access_log off;\n{temp}\n{site}\n}}\n"
        )
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/files/"

    def start(self) -> NginxProxy:
        conf, log = str(self.root / "nginx.conf"), str(self.root / "error.log")
        self.proc = subprocess.Popen(
            [self.binary, "-c", conf, "-p", str(self.root), "-e", log],
            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return self
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("nginx did not start:\n" + self.error_log()) from None
                time.sleep(0.05)

    def error_log(self) -> str:
        path = self.root / "error.log"
        return path.read_text() if path.exists() else ""

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGQUIT)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
        shutil.rmtree(self.root, ignore_errors=True)
