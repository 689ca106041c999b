"""``tusedge uploads list|show|rm|gc`` against the state of a running server, on SQLite and on a real
PostgreSQL: it reports uploads as the server has them, removes them through the service's own termination
(410 afterwards, the file gone, the post-terminate hook delivered by the running server) without racing a
PATCH in flight, and runs a reaper round on demand (post-expire included)."""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from hook_receiver import HookReceiver
from rawhttp import TUS, BodySender, RawRequest, create_upload, head_offset, patch, patch_headers
from server_process import ROOT, ServerFactory, ServerProcess

from tusedge.cli import main

KIB = 1024


def wait_until(condition: Callable[[], bool], what: str, timeout_s: float = 15.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"after {timeout_s} s: {what}"
        time.sleep(0.05)


@pytest.fixture(params=["sqlite", "postgresql"])
def state_flags(request: pytest.FixtureRequest) -> list[str]:
    """The flags naming the state database, shared by the server and the command."""
    if request.param == "sqlite":
        return []
    return ["--database-url", request.getfixturevalue("postgres_url")]


class Node:
    """A running server and the admin command with the same settings."""

    def __init__(self, server: ServerProcess, flags: list[str]) -> None:
        self.server = server
        self.flags = flags

    def uploads(self, *args: str, extra: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
        """``tusedge uploads ACTION ... --json`` with the server's flags: run by ``tusedge.cli.main`` in this
        test process (a process of its own beside the server's, as an operator's would be, without paying
        an interpreter start per call; the entry point itself is run in test_the_command_...)."""
        action, *rest = args
        argv = ["uploads", action, *rest, "--json", "--data-dir", str(self.server.data_dir), *self.flags, *extra]
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            status = main(argv)
        return subprocess.CompletedProcess(argv, status, out.getvalue(), err.getvalue())

    def ok(self, *args: str, extra: tuple[str, ...] = ()) -> Any:
        done = self.uploads(*args, extra=extra)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    def file(self, url: str) -> Path:
        return self.server.data_dir / "uploads" / url.rsplit("/", 1)[1]


@pytest.fixture
def make_node(server_factory: ServerFactory, state_flags: list[str], receiver: HookReceiver) -> Callable[..., Node]:
    """A server (its own reaper waits an hour) and the command, with ``extra`` flags for both."""

    def make(*extra: str) -> Node:
        flags = [*state_flags, "--hook-url", receiver.url, "--reaper-interval-s", "3600", *extra]
        return Node(server_factory(*flags), flags)

    return make


@pytest.fixture
def node(make_node: Callable[..., Node]) -> Node:
    return make_node()


def test_list_and_show_report_uploads_as_the_server_has_them(node: Node) -> None:
    done = create_upload(node.server.url, 5, metadata="filename ZG9uZS50eHQ=")  # done.txt
    assert patch(done, 0, b"hello").status_code == 204
    partly = create_upload(node.server.url, 10)
    assert patch(partly, 0, b"abc").status_code == 204
    gone = create_upload(node.server.url, 10)
    assert httpx.delete(gone, headers=TUS).status_code == 204

    listed = {row["id"]: row for row in node.ok("list")}
    assert set(listed) == {done.rsplit("/", 1)[1], partly.rsplit("/", 1)[1]}  # live ones by default
    first = listed[done.rsplit("/", 1)[1]]
    assert (first["status"], first["offset"], first["length"], first["kind"]) == ("complete", 5, 5, "single")
    assert first["metadata"] == {"filename": "done.txt"} and first["updated_at"].endswith("Z")
    second = listed[partly.rsplit("/", 1)[1]]
    assert (second["status"], second["offset"], second["length"]) == ("active", 3, 10)
    assert second["expires_at"] is not None
    assert [row["id"] for row in node.ok("list", "--state", "terminated")] == [gone.rsplit("/", 1)[1]]
    assert len(node.ok("list", "--state", "all")) == 3
    assert node.ok("list", "--older-than", "1h") == []

    shown = node.ok("show", partly.rsplit("/", 1)[1])
    assert shown["status"] == "active" and shown["offset"] == 3 and shown["in_use"] is False
    assert shown["file"]["path"] == str(node.file(partly)) and shown["file"]["size"] == 10  # preallocated
    missing = node.uploads("show", "0" * 32)
    assert missing.returncode == 1 and "no upload" in json.loads(missing.stdout)["error"]


def test_show_tells_an_upload_is_being_written(node: Node) -> None:
    url = create_upload(node.server.url, 256 * KIB)
    request = RawRequest("PATCH", url, patch_headers(0, 256 * KIB))
    request.send(os.urandom(64 * KIB))
    wait_until(lambda: "tusedge_patches_in_progress 1.0" in httpx.get(f"{node.server.origin}/metrics").text,
               "the PATCH in progress")  # fmt: skip
    assert node.ok("show", url.rsplit("/", 1)[1])["in_use"] is True
    request.send(os.urandom(192 * KIB))
    assert request.read_response().status == 204
    request.close()
    assert node.ok("show", url.rsplit("/", 1)[1])["in_use"] is False


def test_rm_terminates_as_delete_does_and_the_server_delivers_the_hook(node: Node, receiver: HookReceiver) -> None:
    url = create_upload(node.server.url, 5)
    assert patch(url, 0, b"hello").status_code == 204
    upload_id = url.rsplit("/", 1)[1]
    assert node.ok("rm", upload_id) == {"removed": upload_id}
    assert httpx.head(url, headers=TUS).status_code == 410
    assert not node.file(url).exists()
    (event,) = receiver.wait_for("post-terminate")
    assert event["upload"]["id"] == upload_id and event["upload"]["offset"] == 5
    again = node.uploads("rm", upload_id)
    assert again.returncode == 1 and "gone" in again.stderr
    assert node.uploads("rm", "0" * 32).returncode == 1


def test_rm_waits_for_a_patch_in_flight_and_a_quiet_writer_gives_way(node: Node) -> None:
    url = create_upload(node.server.url, 4096 * KIB)
    upload_id = url.rsplit("/", 1)[1]
    request = RawRequest("PATCH", url, patch_headers(0, 4096 * KIB))
    sender = BodySender(request, os.urandom(4096 * KIB), rate_bytes_per_s=256 * KIB, chunk_bytes=16 * KIB).start()
    wait_until(lambda: "tusedge_patches_in_progress 1.0" in httpx.get(f"{node.server.origin}/metrics").text,
               "the PATCH in progress")  # fmt: skip
    busy = node.uploads("rm", upload_id, extra=("--lock-timeout-s", "1"))  # its client keeps sending
    assert busy.returncode == 1 and "being written right now" in busy.stderr
    assert head_offset(url) >= 0  # still there

    sender.stop()  # the client goes quiet, its connection open: after --stale-lock-s the server gives way
    assert node.ok("rm", upload_id, extra=("--lock-timeout-s", "15")) == {"removed": upload_id}
    assert httpx.head(url, headers=TUS).status_code == 410
    request.close()


def test_gc_runs_a_reaper_round_now(make_node: Callable[..., Node], receiver: HookReceiver) -> None:
    node = make_node("--expiry-s", "2")
    url = create_upload(node.server.url, 10)  # the server's own reaper waits an hour
    upload_id = url.rsplit("/", 1)[1]
    wait_until(lambda: httpx.head(url, headers=TUS).status_code == 410, "the upload past its expiry")
    assert node.file(url).exists()  # nobody has removed it yet
    collected = node.ok("gc")
    assert collected["expired"] == [upload_id] and collected["finishing"] == []
    assert not node.file(url).exists()
    assert [row["id"] for row in node.ok("list", "--state", "expired")] == [upload_id]
    (event,) = receiver.wait_for("post-expire")
    assert event["upload"]["id"] == upload_id
    assert node.ok("gc")["expired"] == []


def test_the_command_lists_from_its_own_process_and_refuses_a_folder_without_state(
    tusedge_server: ServerProcess, tmp_path: Path
) -> None:
    url = create_upload(tusedge_server.url, 10)
    listed = subprocess.run([sys.executable, "-m", "tusedge", "uploads", "list", "--data-dir",
                             str(tusedge_server.data_dir)], cwd=ROOT, capture_output=True, text=True,
                            timeout=60)  # fmt: skip
    assert listed.returncode == 0 and url.rsplit("/", 1)[1] in listed.stdout and "1 upload(s)" in listed.stdout
    done = subprocess.run([sys.executable, "-m", "tusedge", "uploads", "list", "--data-dir", str(tmp_path / "nothing")],
                          cwd=ROOT, capture_output=True, text=True, timeout=60)  # fmt: skip
    assert done.returncode == 1 and "no tusedge state" in done.stderr
    assert not (tmp_path / "nothing").exists()  # and creates none
