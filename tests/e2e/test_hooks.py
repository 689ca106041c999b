"""Hooks against a real hook receiver (an HTTP server in this test process): pre-create decides, post-*
events arrive (retried when the receiver fails), and only the configured events are sent."""

from __future__ import annotations

import socket
import time
from typing import Any

import httpx
from hook_receiver import HookReceiver
from rawhttp import patch
from server_process import ServerFactory

TUS = {"Tus-Resumable": "1.0.0"}


def no_executables(event: dict[str, Any]) -> tuple[int, str]:
    if event["type"] == "pre-create" and event["upload"]["metadata"].get("filename", "").endswith(".exe"):
        return 403, "executables are not accepted here\nsecond line not shown"
    if event["type"] == "pre-create" and event["request"]["headers"].get("authorization") != "Bearer good":
        return 401, "who are you?"
    return 200, "ok"


def test_pre_create_decides_with_the_request_and_the_proposed_upload(
    server_factory: ServerFactory, receiver: HookReceiver
) -> None:
    receiver.decide = no_executables
    server = server_factory("--hook-url", receiver.url)
    good = {**TUS, "Upload-Length": "5", "Authorization": "Bearer good", "Upload-Metadata": "filename YS50eHQ="}
    created = httpx.post(server.url, headers=good)
    assert created.status_code == 201
    asked = receiver.of_type("pre-create")[0]
    assert asked["_hook_name"] == "pre-create"
    assert asked["upload"] == {"id": None, "path": None, "size": 5, "offset": 0, "metadata": {"filename": "a.txt"},
                               "concat": None, "parts": []}  # fmt: skip
    assert asked["request"]["method"] == "POST" and asked["request"]["remote_addr"] == "127.0.0.1"
    assert asked["request"]["headers"]["authorization"] == "Bearer good"
    exe = httpx.post(server.url, headers={**good, "Upload-Metadata": "filename YS5leGU="})
    assert exe.status_code == 403 and exe.text.strip() == "ERR_REFUSED_BY_HOOK: executables are not accepted here"
    anonymous = httpx.post(server.url, headers={**TUS, "Upload-Length": "5"})
    assert anonymous.status_code == 401 and "who are you?" in anonymous.text
    uploads = list((server.data_dir / "uploads").iterdir())
    assert len(uploads) == 1  # refused uploads were never created


def test_an_unreachable_pre_create_hook_refuses_uploads_with_503(server_factory: ServerFactory) -> None:
    server = server_factory("--hook-url", "http://127.0.0.1:9/hook", "--hook-timeout-s", "1")
    response = httpx.post(server.url, headers={**TUS, "Upload-Length": "5"})
    assert response.status_code == 503 and "retry" in response.text
    assert response.headers["Retry-After"] == "5"  # clients that honour it (ours does) come back later


def test_post_events_tell_the_upload_story(server_factory: ServerFactory, receiver: HookReceiver) -> None:
    server = server_factory("--hook-url", receiver.url)
    created = httpx.post(server.url, headers={**TUS, "Upload-Length": "5", "Upload-Metadata": "filename YS50eHQ="})
    url = created.headers["Location"]
    upload_id = url.rsplit("/", 1)[1]
    assert patch(url, 0, b"hello").status_code == 204
    finished = receiver.wait_for("post-finish")[0]
    assert finished["upload"]["id"] == upload_id and finished["upload"]["offset"] == 5
    assert finished["upload"]["path"] == f"/files/{upload_id}"
    assert receiver.wait_for("post-create")[0]["request"]["method"] == "POST"
    assert httpx.delete(url, headers=TUS).status_code == 204
    assert receiver.wait_for("post-terminate")[0]["upload"]["id"] == upload_id


def test_post_finish_of_a_final_upload_comes_after_the_merge(
    server_factory: ServerFactory, receiver: HookReceiver
) -> None:
    server = server_factory("--hook-url", receiver.url, "--hook-events", "post-finish")
    parts = []
    for chunk in (b"abc", b"def"):
        created = httpx.post(server.url, headers={**TUS, "Upload-Length": "3", "Upload-Concat": "partial"})
        parts.append(created.headers["Location"])
        assert patch(parts[-1], 0, chunk).status_code == 204
    final = httpx.post(server.url, headers={**TUS, "Upload-Concat": "final;" + " ".join(parts)})
    final_id = final.headers["Location"].rsplit("/", 1)[1]
    events = receiver.wait_for("post-finish", 3)
    joined = [e for e in events if e["upload"]["id"] == final_id]
    assert len(joined) == 1 and joined[0]["upload"]["concat"] == "final" and joined[0]["upload"]["size"] == 6
    assert len(joined[0]["upload"]["parts"]) == 2
    assert {e["type"] for e in receiver.events} == {"post-finish"}  # only the events asked for


def test_post_events_are_retried_until_the_receiver_takes_them(
    server_factory: ServerFactory, receiver: HookReceiver
) -> None:
    failures = iter([500, 502])
    receiver.decide = lambda event: (next(failures, 200), "")
    server = server_factory("--hook-url", receiver.url, "--hook-events", "post-create")
    httpx.post(server.url, headers={**TUS, "Upload-Length": "5"})
    tries = receiver.wait_for("post-create", 3, timeout_s=20)
    assert len({e["upload"]["id"] for e in tries}) == 1  # the same event, delivered on the third try


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_post_events_wait_in_the_outbox_through_a_hook_outage_and_a_server_crash(
    server_factory: ServerFactory,
) -> None:
    """The hook is down when an upload finishes, and the server is then killed -9: after the restart, with
    the hook back, the post-finish event is delivered (it was in the state database, not in memory)."""
    port = free_port()
    server = server_factory("--hook-url", f"http://127.0.0.1:{port}/hook", "--hook-events", "post-finish")
    created = httpx.post(server.url, headers={**TUS, "Upload-Length": "5"})
    url = created.headers["Location"]
    assert patch(url, 0, b"hello").status_code == 204
    time.sleep(1.0)  # the first tries fail: nothing listens
    server.kill()
    hook = HookReceiver(port=port)
    try:
        server.start()
        finished = hook.wait_for("post-finish", timeout_s=30)
        assert finished[0]["upload"]["id"] == url.rsplit("/", 1)[1] and finished[0]["upload"]["size"] == 5
        time.sleep(1.5)
        assert len(hook.of_type("post-finish")) == 1  # delivered once, then removed from the outbox
    finally:
        hook.close()
