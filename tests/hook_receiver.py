"""A real hook receiver for the tests: an HTTP server in the test process that records the events tusedge
POSTs to --hook-url and answers what ``decide`` says (200 by default)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Decide = Callable[[dict[str, Any]], tuple[int, str]]


class HookReceiver:
    def __init__(self, decide: Decide | None = None, port: int = 0) -> None:
        self.events: list[dict[str, Any]] = []
        self.decide: Decide = decide or (lambda event: (200, "ok"))
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                event = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                event["_hook_name"] = self.headers["Hook-Name"]
                receiver.events.append(event)
                status, body = receiver.decide(event)
                data = body.encode()
                self.send_response(status)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def of_type(self, kind: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e["type"] == kind]

    def wait_for(self, kind: str, count: int = 1, timeout_s: float = 15) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout_s
        while len(self.of_type(kind)) < count:
            assert time.monotonic() < deadline, f"{kind}: {self.events}"
            time.sleep(0.02)
        return self.of_type(kind)

    def close(self) -> None:
        self.server.shutdown()
