"""A real tusedge server in a child process (Hypercorn on 127.0.0.1, a free port), for end-to-end tests."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from observe import wait_for

ROOT = Path(__file__).resolve().parent.parent
_RUNNING = re.compile(r"Running on (https?)://([^\s:]+|\[[^\]]+\]):(\d+)")
_WORKER_RUNNING = re.compile(r"\[(\d+)\] \[INFO\] Running on ")


class ServerProcess:
    """``python -m tusedge serve`` in a child process. The port is read from Hypercorn's "Running on" line.

    ``restart()`` starts it again on the same port and data folder, so upload URLs stay valid.
    """

    def __init__(self, data_dir: Path, args: list[str], env: dict[str, str] | None = None) -> None:
        self.data_dir = data_dir
        self.args = list(args)
        self.env = {**os.environ, **(env or {})}
        self.port = 0
        self.scheme = "http"
        self.proc: subprocess.Popen[str] | None = None
        self.log: list[str] = []
        self._has_port_arg = any(a == "--port" or a.startswith("--port=") for a in args)

    @property
    def origin(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        """The creation endpoint, e.g. ``http://127.0.0.1:4321/files/``."""
        return f"{self.origin}{self.base_path}"

    @property
    def base_path(self) -> str:
        for i, arg in enumerate(self.args):
            if arg == "--base-path":
                return self.args[i + 1]
            if arg.startswith("--base-path="):
                return arg.split("=", 1)[1]
        return "/files/"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self, timeout: float = 60.0) -> ServerProcess:
        port_args = [] if self._has_port_arg else ["--port", str(self.port)]
        cmd = [sys.executable, "-m", "tusedge", "serve", "--host", "127.0.0.1", *port_args,
               "--data-dir", str(self.data_dir), *self.args]  # fmt: skip
        self.proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=self.env, cwd=ROOT
        )
        found = threading.Event()
        proc = self.proc

        def pump() -> None:
            assert proc.stdout is not None
            for line in proc.stdout:
                self.log.append(line)
                match = _RUNNING.search(line)
                if match and not found.is_set():
                    self.scheme, self.port = match.group(1), int(match.group(3))
                    found.set()

        threading.Thread(target=pump, daemon=True).start()
        deadline = time.monotonic() + timeout
        while not found.wait(0.05):
            if proc.poll() is not None or time.monotonic() > deadline:
                self.kill()
                raise RuntimeError("tusedge did not start:\n" + "".join(self.log))
        return self

    def wait_for_workers(self, count: int, timeout: float = 60.0) -> list[int]:
        """The pids of ``count`` worker processes once each has said it is running. The server counts as
        started at the first such line; with ``--workers N`` the others may still be starting, and until
        they listen every connection (or QUIC datagram) goes to the first."""

        def running() -> list[int] | None:
            assert self.proc is not None and self.proc.poll() is None, "".join(self.log)
            pids = sorted({int(m.group(1)) for line in list(self.log) if (m := _WORKER_RUNNING.search(line))})
            return pids if len(pids) >= count else None

        return wait_for(running, f"{count} workers running", timeout_s=timeout)

    def stop(self, timeout: float = 10.0) -> None:
        """Graceful stop (SIGTERM), then SIGKILL if it does not exit."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()

    def kill(self) -> None:
        """``kill -9`` the server (and its worker processes)."""
        if self.proc is None or self.proc.poll() is not None:
            return
        _kill_tree(self.proc.pid)
        self.proc.wait(10)

    def restart(self) -> ServerProcess:
        self.stop()
        return self.start()


def _kill_tree(pid: int) -> None:
    children = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()
    for child in children:
        _kill_tree(int(child))
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


class ServerFactory:
    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.servers: list[ServerProcess] = []

    def __call__(self, *args: str, env: dict[str, str] | None = None, data_dir: Path | None = None) -> ServerProcess:
        folder = data_dir or self.tmp_path / f"data{len(self.servers)}"
        server = ServerProcess(folder, list(args), env)
        self.servers.append(server)
        return server.start()

    def close(self) -> None:
        for server in self.servers:
            server.stop()
