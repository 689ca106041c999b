"""The servers compared: tusedge (durable, and with --no-fsync) and the peers, each started on 127.0.0.1 on a
free port in a fresh data folder. Peers are installed on first use under benchmarks/.peers/ (gitignored),
at the versions pinned in benchmarks/peers/; @tus/server comes from tests/js's lock file."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PEERS = HERE / ".peers"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _venv(name: str, requirements: str) -> Path:
    venv = PEERS / name
    marker = venv / ".installed"
    if not marker.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(venv / "bin/pip"), "install", "-q", "-r", str(HERE / "peers" / requirements)], check=True)
        marker.touch()
    return venv


def _node_modules() -> Path:
    js = ROOT / "tests" / "js"
    if not (js / "node_modules" / "@tus" / "server").exists():
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=js, check=True)
    return js


Command = Callable[[int, Path], tuple[list[str], dict[str, str]]]


def _tusedge(*flags: str) -> Command:
    def command(port: int, data: Path) -> tuple[list[str], dict[str, str]]:
        args = [sys.executable, "-m", "tusedge", "serve", "--port", str(port), "--data-dir", str(data)]
        return [*args, "--log-level", "warning", "--finish-wait-s", "3600", *flags], {}

    return command


def _tus_node(port: int, data: Path) -> tuple[list[str], dict[str, str]]:
    js = _node_modules()
    return ["node", str(js / "tus-node-server.mjs"), "--port", str(port), "--dir", str(data)], {}


def _tuspyserver(port: int, data: Path) -> tuple[list[str], dict[str, str]]:
    venv = _venv("tuspyserver", "requirements-tuspyserver.txt")
    app = "benchmarks.peers.tuspyserver_app:app"
    cmd = [str(venv / "bin/python"), "-m", "uvicorn", app, "--port", str(port), "--log-level", "warning"]
    return [*cmd, "--no-access-log"], {"TUSPY_DIR": str(data), "PYTHONPATH": str(ROOT)}


def _resumable(port: int, data: Path) -> tuple[list[str], dict[str, str]]:
    venv = _venv("resumable", "requirements-resumable-upload.txt")
    cmd = [str(venv / "bin/resumable-upload"), "serve", "--host", "127.0.0.1", "--port", str(port)]
    cmd += ["--upload-dir", str(data / "uploads"), "--db-path", str(data / "uploads.db"), "--base-path", "/files"]
    return [*cmd, "--log-level", "WARNING"], {}


@dataclass(frozen=True)
class ServerSpec:
    name: str
    command: Command
    durable: bool  # fsyncs before acknowledging
    concatenation: bool = False


TUSEDGE = ServerSpec("tusedge", _tusedge(), durable=True, concatenation=True)
TUSEDGE_NO_FSYNC = ServerSpec("tusedge --no-fsync", _tusedge("--no-fsync"), durable=False, concatenation=True)
# The access log's cost (docs/deploy.md): tusedge with it off, beside the default (JSON lines to its log file).
TUSEDGE_NO_ACCESS_LOG = ServerSpec("tusedge --access-log off", _tusedge("--access-log", "off"), durable=True,
                                   concatenation=True)  # fmt: skip
PEERS_SPECS = [
    ServerSpec("@tus/server", _tus_node, durable=False),
    ServerSpec("tuspyserver", _tuspyserver, durable=False),
    ServerSpec("resumable-upload", _resumable, durable=False),
]


def tusedge_workers(n: int) -> ServerSpec:
    return ServerSpec(f"tusedge --workers {n}", _tusedge("--workers", str(n)), durable=True, concatenation=True)


class RunningServer:
    def __init__(self, spec: ServerSpec, work: Path, host: str = "127.0.0.1", wrapper: list[str] | None = None) -> None:
        """``wrapper`` prefixes the command (e.g. ``ip netns exec NS``); ``host`` is where it listens."""
        self.spec = spec
        self.port = free_port()
        self.data = work / f"{spec.name.replace(' ', '_').replace('/', '_').replace('@', '')}-{self.port}"
        self.data.mkdir(parents=True)
        cmd, env = spec.command(self.port, self.data)
        if host != "127.0.0.1":
            cmd = [*cmd, "--host", host]
        cmd = [*(wrapper or []), *cmd]
        self.log = open(self.data.with_suffix(".log"), "w")
        self.proc = subprocess.Popen(
            cmd, cwd=ROOT, stdout=self.log, stderr=subprocess.STDOUT, env={**os.environ, **env}, start_new_session=True
        )
        self.endpoint = f"http://{host}:{self.port}/files/"
        self._wait_ready()

    def _wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.spec.name} exited; see {self.log.name}")
            try:
                if httpx.options(self.endpoint, timeout=1).status_code < 500:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"{self.spec.name} did not start; see {self.log.name}")

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(15)
        self.log.close()
        shutil.rmtree(self.data, ignore_errors=True)
