"""The access log (tusedge/server/access_log.py) of a real server: one JSON or logfmt line per request on
stdout with every field, the forwarded client with --trust-proxy, h1, h2 and h3, no query strings, and the
probes left out unless asked for."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from rawhttp import OCTETS, TUS
from server_process import ServerFactory, ServerProcess
from tls_servers import https_server

from tusedge.client.http3 import H3Transport

UA = {"User-Agent": 'tusedge-test/1.0 (access "log")'}
FIELDS = ["time", "client", "method", "path", "upload_id", "status", "bytes_received", "bytes_sent", "duration_s",
          "http", "protocol", "user_agent"]  # fmt: skip
LOGFMT_PAIR = re.compile(r'(\w+)=("(?:[^"\\]|\\.)*"|\S*)')


def json_lines(server: ServerProcess) -> list[dict[str, Any]]:
    return [json.loads(line) for line in server.log if line.startswith("{")]


def parse_logfmt(line: str) -> dict[str, str]:
    pairs = {}
    for key, value in LOGFMT_PAIR.findall(line):
        pairs[key] = json.loads(value) if value.startswith('"') else value
    return pairs


def logfmt_lines(server: ServerProcess) -> list[dict[str, str]]:
    return [parse_logfmt(line) for line in server.log if line.startswith("time=")]


def wait_for_lines(read: Callable[[], list[Any]], count: int, timeout_s: float = 10.0) -> list[Any]:
    """Lines are written once a response is sent, so the client may read its answer first."""
    deadline = time.monotonic() + timeout_s
    while len(lines := read()) < count:
        assert time.monotonic() < deadline, f"{len(lines)} access log lines, expected {count}"
        time.sleep(0.02)
    return lines


def test_json_access_log_has_one_line_per_request_with_every_field(tusedge_server: ServerProcess) -> None:
    server = tusedge_server
    with httpx.Client(headers=UA) as client:
        created = client.post(f"{server.url}?signature=secret", content=b"hello",
                              headers={**OCTETS, "Upload-Length": "15"})  # fmt: skip
        assert created.status_code == 201
        url = created.headers["Location"]
        upload_id = url.rsplit("/", 1)[1]
        assert client.patch(url, content=b"0123456789", headers={**OCTETS, "Upload-Offset": "5"}).status_code == 204
        assert client.head(url, headers=TUS).status_code == 200
        assert client.get(f"{server.origin}/healthz").status_code == 200  # probes: not logged by default
        assert client.get(f"{server.origin}/readyz").status_code == 200
        assert client.get(url).content == b"hello0123456789"

    post, patch, head, get = wait_for_lines(lambda: json_lines(server), 4)
    assert list(post) == FIELDS
    assert post["method"] == "POST" and post["path"] == "/files/"  # the query (a signature) is not logged
    assert post["upload_id"] == upload_id and post["status"] == 201 and post["bytes_received"] == 5
    assert patch["method"] == "PATCH" and patch["upload_id"] == upload_id and patch["bytes_received"] == 10
    assert patch["status"] == 204 and patch["path"] == f"/files/{upload_id}"
    assert head["method"] == "HEAD" and head["status"] == 200 and head["bytes_received"] == 0
    assert get["method"] == "GET" and get["bytes_sent"] == 15 and get["protocol"] == ""  # no Tus-Resumable
    for line in (post, patch, head):
        assert line["client"] == "127.0.0.1" and line["http"] == "h1" and line["protocol"] == "tus"
        assert line["user_agent"] == UA["User-Agent"]
        assert isinstance(line["duration_s"], float) and 0 <= line["duration_s"] < 10
        arrived = datetime.fromisoformat(line["time"].replace("Z", "+00:00"))
        assert abs((datetime.now(UTC) - arrived).total_seconds()) < 60
    assert not [line for line in json_lines(server) if line["path"] in ("/healthz", "/readyz")]


def test_logfmt_access_log_with_the_forwarded_client_over_h2_and_the_probes(server_factory: ServerFactory) -> None:
    server = server_factory("--access-log", "logfmt", "--access-log-probes", "--trust-proxy")
    forwarded = {**UA, "X-Forwarded-For": "203.0.113.7"}
    with httpx.Client(http1=False, http2=True, headers=forwarded) as client:  # h2c, by prior knowledge
        assert client.options(server.url).status_code == 204
        assert client.get(f"{server.origin}/readyz").status_code == 200
        upload = client.post(server.url, headers={**TUS, "Upload-Length": "1", "Upload-Draft-Interop-Version": "6"})
        assert upload.status_code == 201

    options, probe, post = wait_for_lines(lambda: logfmt_lines(server), 3)
    assert options["method"] == "OPTIONS" and options["status"] == "204" and options["protocol"] == ""
    assert probe["path"] == "/readyz" and probe["status"] == "200"
    assert post["upload_id"] == upload.headers["Location"].rsplit("/", 1)[1] and post["protocol"] == "tus"
    for line in (options, probe, post):
        assert list(line) == FIELDS
        assert line["client"] == "203.0.113.7" and line["http"] == "h2"
        assert line["user_agent"] == UA["User-Agent"]  # quoted and escaped: it has spaces and quotes


def test_an_ietf_draft_request_is_logged_as_such(tusedge_server: ServerProcess) -> None:
    """No Tus-Resumable, an Upload-Draft-Interop-Version: the client speaks the IETF draft (which this
    server does not: it answers 412, and the log says what was asked for)."""
    answer = httpx.post(tusedge_server.url, headers={"Upload-Draft-Interop-Version": "6", "Upload-Complete": "?1"})
    assert answer.status_code == 412
    (line,) = wait_for_lines(lambda: json_lines(tusedge_server), 1)
    assert line["protocol"] == "ietf" and line["status"] == 412


def test_no_access_log_when_off(server_factory: ServerFactory) -> None:
    server = server_factory("--access-log", "off")
    assert httpx.options(server.url).status_code == 204
    server.stop()
    assert not json_lines(server) and not logfmt_lines(server)


async def test_an_http3_request_is_logged_as_h3_with_its_upload_and_bytes(
    server_factory: ServerFactory, tmp_path: Path
) -> None:
    server, certfile = https_server(server_factory, tmp_path, "--http3")
    async with httpx.AsyncClient(transport=H3Transport(verify=str(certfile)), timeout=60, headers=UA) as client:
        created = await client.post(server.url, headers={**TUS, "Upload-Length": "6"})
        assert created.status_code == 201 and created.http_version == "HTTP/3"
        url = created.headers["Location"]
        patched = await client.patch(url, content=b"abcdef", headers={**OCTETS, "Upload-Offset": "0"})
        assert patched.status_code == 204 and patched.http_version == "HTTP/3"

    post, patch = wait_for_lines(lambda: json_lines(server), 2)
    upload_id = url.rsplit("/", 1)[1]
    assert (post["method"], post["http"], post["protocol"], post["upload_id"]) == ("POST", "h3", "tus", upload_id)
    assert (patch["method"], patch["http"], patch["upload_id"], patch["bytes_received"]) == (
        "PATCH", "h3", upload_id, 6)  # fmt: skip
    assert patch["user_agent"] == UA["User-Agent"] and patch["client"] == "127.0.0.1"
