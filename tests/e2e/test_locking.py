"""One writer per upload: a second PATCH to an upload that is receiving bytes is refused and never mixes its bytes
in; a request whose client went quiet without closing the connection gives way to a client that reconnects."""

from __future__ import annotations

import os
import time

from observe import wait_body_bytes_read
from rawhttp import (
    KIB,
    BodySender,
    RawRequest,
    create_upload,
    download,
    head_offset,
    patch,
    patch_headers,
    sha256,
)
from server_process import ServerFactory

LOCK_TIMEOUT_S = 2.0
STALE_LOCK_S = 1.0


def test_second_patch_while_first_streams_is_refused_without_interleaving(server_factory: ServerFactory) -> None:
    """ours: one writer per upload. While a PATCH streams its body without pause, a second PATCH at the same
    offset waits at most --lock-timeout-s and is refused with 423 (or 409) and a one-line reason; its bytes are
    never written. The first PATCH then completes and the content is exactly its body."""
    server = server_factory("--lock-timeout-s", str(LOCK_TIMEOUT_S), "--stale-lock-s", str(STALE_LOCK_S))
    data = os.urandom(4_000_000)
    intruder = os.urandom(1_000_000)
    url = create_upload(server.url, len(data))
    with RawRequest("PATCH", url, patch_headers(0, len(data))) as first:
        # 256 KiB/s in 16 KiB pieces: a piece every ~60 ms, so the holder is never quiet long enough to give way.
        sender = BodySender(first, data, rate_bytes_per_s=256 * KIB, chunk_bytes=16 * KIB).start()
        wait_body_bytes_read(server.origin, 16 * KIB)  # the first request is reading its body: it holds the lock
        started = time.monotonic()
        second = patch(url, 0, intruder)
        waited = time.monotonic() - started
        assert not sender.done and sender.error is None, "the first PATCH stopped streaming during the test"
        sender.stop()
        assert second.status_code in (409, 423), (second.status_code, second.text)
        assert second.text.strip() and "\n" not in second.text.strip()
        if second.status_code == 423:
            assert waited >= LOCK_TIMEOUT_S * 0.9, f"refused after {waited:.2f} s, before the lock timeout"
        first.send(data[sender.sent :])
        response = first.read_response()
    assert response.status == 204, response
    assert response.headers["upload-offset"] == str(len(data))
    assert sha256(download(url)) == sha256(data)


def test_quiet_holder_gives_way_to_reconnected_client(server_factory: ServerFactory) -> None:
    """ours: a client that reconnects after its connection died takes over from the dead request instead of
    waiting behind it. The old connection stays open but sends nothing; a new PATCH asks its request to let go,
    which it does once it has been quiet for --stale-lock-s: it commits the 700,001 bytes it received (answering
    its silent client 423) and the new PATCH gets the lock within a few seconds. Its Upload-Offset (from a HEAD
    taken before the old request let go) is now behind, so it gets 409; HEAD shows all 700,001 bytes, and the
    upload continues from there and completes."""
    lock_timeout_s = 5.0
    server = server_factory("--lock-timeout-s", str(lock_timeout_s), "--stale-lock-s", str(STALE_LOCK_S))
    data = os.urandom(3_000_000)
    sent = 700_001
    url = create_upload(server.url, len(data))
    with RawRequest("PATCH", url, patch_headers(0, len(data))) as stale:
        stale.send(data[:sent])
        wait_body_bytes_read(server.origin, sent)  # the server has read the bytes; the connection stays open, silent
        seen = head_offset(url)
        assert seen <= sent
        started = time.monotonic()
        takeover = patch(url, seen, data[seen:])
        waited = time.monotonic() - started
        assert takeover.status_code == 409, (takeover.status_code, takeover.text)
        assert str(sent) in takeover.text, takeover.text
        assert waited < lock_timeout_s - 1, f"the new PATCH waited {waited:.2f} s behind a quiet connection"
        # The old request was stopped, not left to time out on its own: its client is told why.
        old = stale.read_response(timeout_s=5)
        assert old.status == 423 and b"interrupted" in old.body, old
    assert head_offset(url) == sent
    response = patch(url, sent, data[sent:])
    assert response.status_code == 204, (response.status_code, response.text)
    assert sha256(download(url)) == sha256(data)


def test_quiet_holder_keeps_the_lock_until_stale(server_factory: ServerFactory) -> None:
    """ours: --stale-lock-s is the quiet time after which a holder gives way. With a long stale time (30 s) and a
    short lock timeout, a request behind a holder that has been quiet for less is refused with 423, and the
    holder, once its client sends the rest, completes the upload alone."""
    server = server_factory("--lock-timeout-s", "1", "--stale-lock-s", "30")
    data = os.urandom(1_000_000)
    url = create_upload(server.url, len(data))
    with RawRequest("PATCH", url, patch_headers(0, len(data))) as holder:
        holder.send(data[:400_000])
        wait_body_bytes_read(server.origin, 400_000)
        refused = patch(url, 0, data)
        assert refused.status_code == 423, (refused.status_code, refused.text)
        assert head_offset(url) == 0
        holder.send(data[400_000:])
        response = holder.read_response()
    assert response.status == 204, response
    assert sha256(download(url)) == sha256(data)
