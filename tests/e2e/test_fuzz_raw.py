"""A bounded, seeded raw-request fuzzer against a running server (issue 11): a few thousand requests over plain
sockets with malformed and extreme values of every tus header, odd methods and paths, and bodies shorter and
longer than they declare, against a pool of real uploads. After every request:

- no answer is a 5xx, and every request is answered or its connection closed within the timeout (no hang);
- a request answered with an error changed nothing of its upload (offset, length, metadata);
- offsets never pass lengths, and the bytes below each offset are exactly those the fuzzer sent there;
- finished uploads stay byte-exact (checked with GET every few hundred requests and at the end);
- the server's log has no traceback.

The seed and the count are fixed so CI runs the same requests every time; ``FUZZ_SEED`` and
``FUZZ_REQUESTS`` run others. A failure names the request that caused it.
"""

from __future__ import annotations

import base64
import hashlib
import os
import random
import re
import socket
from dataclasses import dataclass, field

import httpx
import pytest
from observe import metric, wait_for
from server_process import ServerFactory, ServerProcess

SEED = int(os.environ.get("FUZZ_SEED", "20261202"))
REQUESTS = int(os.environ.get("FUZZ_REQUESTS", "2000"))
TIMEOUT_S = 15.0
MAX_SIZE = 1 << 20
TUS = {"Tus-Resumable": "1.0.0"}

NUMBERS = ["0", "1", "-1", "+5", "007", "1e3", " 12 ", "\t3", "", "abc", "0x10", "1,2", "1 2", "3.0",
           "9223372036854775807", "9223372036854775808", "18446744073709551616", "17592186044416",
           "99999999999999999999999999", "\u0663", "\uff11"]  # fmt: skip
TEXT = ["", " ", "\t", "x", "\u00e9", "\x7f", ";", ",", "==", "a" * 300, "%00", "\\", '"', "null", "1.0.0 "]
METHODS = ["POST"] * 6 + ["PATCH"] * 10 + ["HEAD"] * 4 + ["GET"] * 3 + ["DELETE"] * 2 + ["OPTIONS"] * 2 + \
          ["PUT", "patch", "TRACE", "CONNECT", "FOO", "PATCH\x00", "P@TCH", "X" * 40]  # fmt: skip


@dataclass
class Upload:
    url: str
    path: str
    length: int | None
    data: bytearray = field(default_factory=bytearray)  # what the fuzzer sent below the offset
    final: bool = False
    partial: bool = False


@dataclass
class Answer:
    status: int | None  # None: the connection closed without an answer
    headers: dict[str, str]
    body: bytes


class Fuzzer:
    def __init__(self, server: ServerProcess, rng: random.Random) -> None:
        self.server, self.rng = server, rng
        self.pool: list[Upload] = []
        self.finished: dict[str, bytes] = {}  # url -> content of complete uploads
        self.log: list[str] = []
        self.http = httpx.Client(timeout=TIMEOUT_S)  # keep-alive for the fuzzer's own checks

    # --- sending -------------------------------------------------------------------------------------
    def send(self, method: str, target: str, headers: list[tuple[str, str]], body: bytes, framing: str) -> Answer:
        head = [f"{method} {target} HTTP/1.1", f"Host: 127.0.0.1:{self.server.port}", "Connection: close"]
        if framing == "cl":
            headers = [*headers, ("Content-Length", str(len(body)))]
        elif framing == "cl-short":  # declares more than it sends, then half-closes
            headers = [*headers, ("Content-Length", str(len(body) + self.rng.choice([1, 100, 70000])))]
        elif framing == "cl-long":  # sends more than it declares
            headers = [*headers, ("Content-Length", str(max(0, len(body) - self.rng.randint(1, 50))))]
        elif framing.startswith("chunked"):
            headers = [*headers, ("Transfer-Encoding", "chunked")]
        wire = ("\r\n".join(head + [f"{n}: {v}" for n, v in headers]) + "\r\n\r\n").encode("utf-8", "surrogateescape")
        if framing == "chunked":
            pieces = [body[i : i + 1000] for i in range(0, len(body), 1000)]
            wire += b"".join(f"{len(p):x}\r\n".encode() + p + b"\r\n" for p in pieces) + b"0\r\n\r\n"
        elif framing == "chunked-bad":
            wire += self.rng.choice([b"zz\r\n", b"-1\r\n", b"ffffffffffffffffff\r\n", b"5\r\nab\r\n0\r\n\r\n"]) + body
        else:
            wire += body
        with socket.create_connection(("127.0.0.1", self.server.port), timeout=TIMEOUT_S) as sock:
            try:
                sock.sendall(wire)
                if framing in ("cl-short", "chunked-bad"):  # a body that may never end: the client goes
                    sock.shutdown(socket.SHUT_WR)
            except OSError:
                pass  # answered (and closed) before the body was taken: read the answer
            return self.read(sock, method)

    @staticmethod
    def read(sock: socket.socket, method: str) -> Answer:
        data = b""
        try:
            while b"\r\n\r\n" not in data:
                chunk = sock.recv(65536)
                if not chunk:
                    return Answer(None, {}, data)
                data += chunk
        except ConnectionResetError:
            return Answer(None, {}, data)
        except TimeoutError:
            pytest.fail(f"no answer and no close within {TIMEOUT_S} s (a hang)")
        head, _, body = data.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        if method != "HEAD":
            want = int(headers.get("content-length", "0") or 0)
            try:
                while len(body) < want:
                    chunk = sock.recv(65536)
                    if not chunk:
                        break
                    body += chunk
            except (ConnectionResetError, TimeoutError):
                pass
        return Answer(int(lines[0].split(" ")[1]), headers, body)

    # --- state ---------------------------------------------------------------------------------------
    def head(self, upload: Upload) -> tuple[int, str | None, str | None] | None:
        """(offset, length, metadata) of an upload; None once it is gone."""
        response = self.http.head(upload.url, headers=TUS)
        assert response.status_code < 500, response.status_code
        if response.status_code in (404, 410):
            return None
        assert response.status_code == 200, response.status_code
        h = response.headers
        offset = int(h.get("Upload-Offset", "0"))
        return offset, h.get("Upload-Length"), h.get("Upload-Metadata")

    def new_upload(self) -> None:
        kind = self.rng.random()
        headers = {**TUS}
        length: int | None = self.rng.choice([0, 1, 10, 1000, 70000, 300000])
        if kind < 0.2:
            headers["Upload-Defer-Length"] = "1"
            length = None
        else:
            headers["Upload-Length"] = str(length)
        partial = kind > 0.8
        if partial:
            headers["Upload-Concat"] = "partial"
        response = httpx.post(self.server.url, headers=headers, timeout=TIMEOUT_S)
        assert response.status_code == 201, response.text
        url = response.headers["Location"]
        upload = Upload(url, url.split(str(self.server.port), 1)[1], length, partial=partial)
        self.pool.append(upload)
        if length == 0:
            self.finished[url] = b""

    # --- one fuzzed request --------------------------------------------------------------------------
    def value(self, real: str | None = None) -> str:
        if real is not None and self.rng.random() < 0.5:
            return real
        return self.rng.choice(NUMBERS + TEXT)

    def request(self, index: int) -> None:
        rng = self.rng
        method = rng.choice(METHODS)
        upload = rng.choice(self.pool) if self.pool else None
        targets = ["/files/", "/files", "/files//", "/", "/files/" + "0" * 32, "/files/../files/", "/ui/%00",
                   "/ui/../../etc/passwd", "/files/%zz", "/files/" + "a" * 3000, "/files/?x=%C3%A9", "*",
                   "http://evil.example/files/", "/files/\u00e9", "/healthz", "/readyz", "/metrics"]  # fmt: skip
        target = upload.path if upload is not None and rng.random() < 0.7 else rng.choice(targets)
        if upload is not None and rng.random() < 0.05:
            target = upload.path + rng.choice(["/", "x", "?a=b", "%00", "/../" + upload.path[7:]])
        # A request for the upload (a query string or X-HTTP-Method-Override still reaches it) is checked.
        checked = upload is not None and target.split("?", 1)[0] == upload.path
        before = self.head(upload) if upload is not None and checked else None
        offset = before[0] if before is not None else 0

        headers: list[tuple[str, str]] = []
        if rng.random() < 0.9:
            headers.append(("Tus-Resumable", rng.choice(["1.0.0"] * 8 + ["0.2.2", "1.0", "", "1.0.0, 1.0.0"])))
        if rng.random() < 0.7:
            headers.append(
                (
                    "Content-Type",
                    rng.choice(
                        ["application/offset+octet-stream"] * 6
                        + TEXT
                        + ["application/offset+octet-stream; x=1", "text/plain"]
                    ),
                )
            )
        if rng.random() < 0.8:
            headers.append(("Upload-Offset", self.value(str(offset))))
        for name, real in (("Upload-Length", None if upload is None or upload.length is None else str(upload.length)),
                           ("Upload-Defer-Length", "1")):  # fmt: skip
            if rng.random() < 0.25:
                headers.append((name, self.value(real)))
        if rng.random() < 0.2:
            meta = rng.choice(["filename " + base64.b64encode(b"a.txt").decode(), "k", "k ,k", "a b c", " ", "k !!",
                               "k " + "QUFB" * rng.choice([1, 100, 3000]), ",", "\u00e9 YQ=="])  # fmt: skip
            headers.append(("Upload-Metadata", meta))
        if rng.random() < 0.15:
            digest = base64.b64encode(hashlib.sha1(b"").digest()).decode()
            headers.append(("Upload-Checksum", rng.choice([f"sha1 {digest}", "sha1", "md5 !!", "nope AAAA", "",
                                                           "sha1 " + "A" * 5000])))  # fmt: skip
        if rng.random() < 0.1:
            headers.append(
                (
                    "Upload-Concat",
                    rng.choice(
                        [
                            "partial",
                            "final;",
                            "final;" + target,
                            "final;/files/x",
                            "final;" + " ".join(u.path for u in self.pool[:3]),
                            "x",
                        ]
                    ),
                )
            )
        if rng.random() < 0.08:
            headers.append(("Content-Encoding", rng.choice(["zstd", "gzip", "identity", "zstd, zstd", ""])))
        if rng.random() < 0.05:  # a duplicate of a header already sent, another value
            if headers:
                name, _ = rng.choice(headers)
                headers.append((name, self.value()))
        if rng.random() < 0.05:
            headers.append(("X-HTTP-Method-Override", rng.choice(["PATCH", "DELETE", "GET", "x", ""])))
        if rng.random() < 0.03:
            headers.append(("X-Long", "v" * rng.choice([100, 9000, 40000])))
        rng.shuffle(headers)

        size = rng.choice([0, 0, 1, 5, 100, 1000, 4096, 70000])
        body = rng.randbytes(size)
        framing = rng.choice(["cl"] * 6 + ["none", "cl-short", "cl-long", "chunked", "chunked", "chunked-bad"])
        if framing == "none":
            body = b""
        what = f"#{index} {method} {target[:80]} {headers} body {len(body)} {framing}"
        self.log.append(what)
        answer = self.send(method, target, headers, body, framing)
        assert answer.status is None or answer.status < 500, f"{what} -> {answer.status} {answer.body[:300]!r}"
        if upload is not None and checked:
            if answer.status is None or framing in ("cl-short", "chunked-bad", "cl-long"):
                # A body cut off is committed by the server once it notices, which may be after the connection
                # closed: wait until no body is being written (its gauge) before comparing.
                wait_for(lambda: metric(self.server.origin, "tusedge_patches_in_progress") == 0,
                         "no request body being written", timeout_s=TIMEOUT_S)  # fmt: skip
            overrides = [v.strip().upper() for n, v in headers if n == "X-HTTP-Method-Override"]
            known = ("GET", "HEAD", "POST", "PATCH", "DELETE", "OPTIONS")
            # Methods are case-sensitive (RFC 9110 9.1), but the server takes "patch" as PATCH (a finding, left).
            effective = overrides[0] if len(overrides) == 1 and overrides[0] in known else method.upper()
            self.check(upload, before, effective, answer, body, framing, what)
        if method == "POST" and answer.status == 201 and "location" in answer.headers:
            self.adopt(answer, headers, body)

    def check(self, upload: Upload, before: tuple[int, str | None, str | None] | None, method: str, answer: Answer,
              body: bytes, framing: str, what: str) -> None:  # fmt: skip
        after = self.head(upload)
        if after is None:
            # Gone: terminated, or a partial upload consumed by a final the fuzzer concatenated.
            assert method.upper() == "DELETE" or before is None or upload.partial, f"{what}: the upload is gone"
            self.pool.remove(upload)
            self.finished.pop(upload.url, None)
            return
        if before is None:
            return
        # A request whose body arrived as declared (or longer: what follows a request with Connection: close is
        # dropped, see the test below) and was refused changed nothing. A body cut off (cl-short, bad chunking)
        # keeps what arrived whatever its half-closed client is told.
        whole = framing in ("cl", "cl-long", "chunked", "none")
        if whole and answer.status is not None and answer.status >= 400:
            assert after == before, f"{what} -> {answer.status} changed the upload: {before} -> {after}"
        moved = after[0] - before[0]
        assert moved >= 0, f"{what}: the offset went back {before} -> {after}"
        if moved:
            assert method == "PATCH", f"{what}: a {method} moved the offset"
            upload.data += body[:moved]
        if after[1] is not None:
            upload.length = int(after[1])
            assert after[0] <= upload.length, f"{what}: offset {after[0]} past length {upload.length}"
            if after[0] == upload.length and upload.url not in self.finished:
                self.finished[upload.url] = bytes(upload.data)

    def adopt(self, answer: Answer, headers: list[tuple[str, str]], body: bytes) -> None:
        """A creation the fuzzer got through: into the pool, with its bytes if it carried some."""
        url = answer.headers["location"]
        path = url.split(str(self.server.port), 1)[1] if str(self.server.port) in url else url
        upload = Upload(url, path, None, final=any(n == "Upload-Concat" and v.startswith("final") for n, v in headers))
        state = self.head(upload)
        assert state is not None
        upload.length = int(state[1]) if state[1] is not None else None
        upload.data += body[: state[0]]
        if not upload.final:
            self.pool.append(upload)
            if upload.length is not None and state[0] == upload.length:
                self.finished[url] = bytes(upload.data)

    # --- invariants ----------------------------------------------------------------------------------
    def verify(self) -> None:
        for upload in list(self.pool):
            state = self.head(upload)
            if state is None:
                self.pool.remove(upload)
                continue
            assert upload.length is None or state[0] <= upload.length
            stored = (self.server.data_dir / "uploads" / upload.path.rsplit("/", 1)[1]).read_bytes()[: state[0]]
            assert stored == bytes(upload.data[: state[0]]), f"the bytes of {upload.url} differ from those sent"
        for url, content in self.finished.items():
            response = self.http.get(url)
            if response.status_code in (404, 410):  # deleted since, or a partial merged into a final
                continue
            assert response.status_code == 200, (url, response.status_code, response.text)
            assert hashlib.sha256(response.content).digest() == hashlib.sha256(content).digest(), url


@pytest.fixture
def fuzz_server(server_factory: ServerFactory) -> ServerProcess:
    return server_factory("--max-size-bytes", str(MAX_SIZE), "--lock-timeout-s", "1", "--access-log", "off")


def test_raw_fuzzer_finds_no_5xx_no_hang_and_no_broken_invariant(fuzz_server: ServerProcess) -> None:
    rng = random.Random(SEED)
    fuzzer = Fuzzer(fuzz_server, rng)
    for _ in range(12):
        fuzzer.new_upload()
    for index in range(REQUESTS):
        if len(fuzzer.pool) < 8:
            fuzzer.new_upload()
        try:
            fuzzer.request(index)
        except (AssertionError, pytest.fail.Exception) as exc:
            raise AssertionError(f"{fuzzer.log[-1]}: {exc}") from exc
        if index % 500 == 499:
            fuzzer.verify()
    fuzzer.verify()
    log = "".join(fuzz_server.log)
    assert "Traceback" not in log, log[-5000:]
    assert fuzzer.finished, "no upload was ever finished: the fuzzer is too hostile to test byte-exactness"


def test_a_body_longer_than_its_content_length_gets_its_own_answer_first(fuzz_server: ServerProcess) -> None:
    """RFC 9112 9.3: answers come in the order of the requests. A PATCH declaring 69,999 bytes followed by one
    byte more (the start of a next, malformed request) is committed; its client must get its 204 first, not
    only the 400 for the trailing byte (then it believes the PATCH was refused). RFC 9112 9.6: what follows a
    request with ``Connection: close`` is not processed at all."""
    url = httpx.post(fuzz_server.url, headers={**TUS, "Upload-Length": "70000"}).headers["Location"]
    path = url.split(str(fuzz_server.port), 1)[1]
    head = (
        f"PATCH {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nTus-Resumable: 1.0.0\r\nConnection: close\r\n"
        "Content-Type: application/offset+octet-stream\r\nUpload-Offset: 0\r\nContent-Length: 69999\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", fuzz_server.port), timeout=TIMEOUT_S) as sock:
        sock.sendall(head.encode() + b"x" * 70000)
        answer = Fuzzer.read(sock, "PATCH")
    offset = int(httpx.head(url, headers=TUS).headers["Upload-Offset"])
    assert answer.status == 204 or offset == 0, (answer.status, offset)


def test_connect_is_not_overridden_into_a_tunnel_answer(fuzz_server: ServerProcess) -> None:
    """Found by the fuzzer: ``CONNECT`` with ``X-HTTP-Method-Override: OPTIONS`` was answered 204, which HTTP/1.1
    (h11) takes as the switch to a tunnel: the server then failed to end the answer and logged a traceback.
    The override does not apply to CONNECT: 405, and nothing in the log."""
    with socket.create_connection(("127.0.0.1", fuzz_server.port), timeout=TIMEOUT_S) as sock:
        sock.sendall(b"CONNECT /files/ HTTP/1.1\r\nHost: 127.0.0.1\r\nX-HTTP-Method-Override: OPTIONS\r\n"
                     b"Tus-Resumable: 1.0.0\r\nConnection: close\r\n\r\n")  # fmt: skip
        answer = Fuzzer.read(sock, "CONNECT")
    assert answer.status == 405, answer
    assert httpx.options(fuzz_server.url).status_code == 204  # the server is fine
    assert "Traceback" not in "".join(fuzz_server.log)


def _creation(port: int, connection: str) -> bytes:
    return (f"POST /files/ HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nTus-Resumable: 1.0.0\r\nUpload-Length: 5\r\n"
            f"Content-Length: 0\r\nConnection: {connection}\r\n\r\n").encode()  # fmt: skip


def _answers_until_closed(port: int, wire: bytes) -> list[str]:
    """Send ``wire`` on one connection; the status lines and Locations of every answer until the server closes."""
    received = b""
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT_S) as sock:
        sock.sendall(wire)
        while chunk := sock.recv(65536):
            received += chunk
    return re.findall(r"^(HTTP/1\.1 \d{3}|location: [^\r]*)", received.decode("latin-1"), re.MULTILINE | re.IGNORECASE)


def test_no_request_after_one_with_connection_close_is_processed(fuzz_server: ServerProcess) -> None:
    """RFC 9112 9.6: a server MUST NOT process further requests received after one with ``close``. Two creations
    pipelined behind a closing one: one answer (its 201), then the connection ends; no second upload exists."""
    created = metric(fuzz_server.origin, "tusedge_uploads_created_total", kind="single")
    port = fuzz_server.port
    answers = _answers_until_closed(port, _creation(port, "close") + _creation(port, "keep-alive") * 2)
    assert [line for line in answers if line.startswith("HTTP")] == ["HTTP/1.1 201"], answers
    assert metric(fuzz_server.origin, "tusedge_uploads_created_total", kind="single") == created + 1


def test_pipelined_requests_on_a_kept_connection_are_answered_in_order(fuzz_server: ServerProcess) -> None:
    """The other side of the rule above: without ``close``, pipelined requests are each answered, in order."""
    port = fuzz_server.port
    answers = _answers_until_closed(port, _creation(port, "keep-alive") * 2 + _creation(port, "close"))
    assert [line for line in answers if line.startswith("HTTP")] == ["HTTP/1.1 201"] * 3, answers
    assert len({line for line in answers if line.lower().startswith("location")}) == 3, answers
