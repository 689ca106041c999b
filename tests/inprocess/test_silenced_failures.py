"""Failures nobody awaits are logged, never swallowed: a finishing job that raises a bug, a job that fails
while it is cancelled at shutdown, a hook delivery that does not get through."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
from collections.abc import Callable
from typing import Any

import pytest
from hook_receiver import HookReceiver
from inprocess_app import Factory, InProcess, eventually, until

from tusedge.protocol.upload import Status


def declared(data: bytes) -> dict[str, str]:
    """Upload-Metadata declaring the whole-file sha256 of ``data``: completing it starts a finishing job."""
    inner = base64.b64encode(hashlib.sha256(data).digest()).decode()
    return {"Upload-Metadata": "checksum " + base64.b64encode(f"sha256 {inner}".encode()).decode()}


def logged(caplog: pytest.LogCaptureFixture, text: str) -> Callable[[], bool]:
    return lambda: any(text in record.getMessage() for record in caplog.records)


async def test_a_finishing_job_that_raises_a_bug_is_logged_and_retried(
    inprocess_factory: Factory, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A job nobody awaits logs what it raises (with the traceback) and leaves the upload FINISHING for the
    next round, which completes it."""
    async with inprocess_factory(finish_wait_s=5.0) as tus:

        async def broken_digest(*args: Any) -> bytes:
            raise RuntimeError("a bug in the digest")

        monkeypatch.setattr(tus.components.store, "digest", broken_digest)
        path = await tus.create(5, **declared(b"12345"))
        assert (await tus.patch(path, 0, b"12345")).status_code == 204
        await until(logged(caplog, "failed unexpectedly, will retry"), "the job's failure is logged")
        (record,) = [r for r in caplog.records if "failed unexpectedly" in r.getMessage()]
        assert record.levelno == logging.ERROR and record.exc_info is not None
        assert "a bug in the digest" in str(record.exc_info[1])
        assert await status(tus, path) is Status.FINISHING
        monkeypatch.undo()
        await tus.service.finisher.resume_pending()
        await eventually(lambda: is_complete(tus, path), "the next round completes it")


async def status(tus: InProcess, path: str) -> Status | None:
    info = await tus.components.repository.get(path.rsplit("/", 1)[1])
    return None if info is None else info.status


async def is_complete(tus: InProcess, path: str) -> bool:
    return await status(tus, path) is Status.COMPLETE


async def test_a_job_that_fails_while_cancelled_at_shutdown_is_logged(
    inprocess_factory: Factory, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Finisher.close cancels the jobs still running; one that ends in an error instead (here its lock's
    release fails on the way out) is logged, not swallowed."""
    started = asyncio.Event()
    async with inprocess_factory(finish_wait_s=0.0) as tus:
        locker = tus.components.locker
        real_acquire = locker.acquire

        async def acquire(upload_id: str, timeout_s: float, *, ask_release: bool = True) -> Any:
            lock = await real_acquire(upload_id, timeout_s, ask_release=ask_release)
            if ask_release or timeout_s == 0:
                # A request's lock (a PATCH tries it at once, then asks its holder to let go) or the reaper's;
                # the finishing job's waits for it and asks nobody to let go.
                return lock

            class FailingRelease:
                def __init__(self) -> None:
                    self.upload_id = upload_id
                    self.release_requested = lock.release_requested

                async def release(self) -> None:
                    await lock.release()
                    raise OSError("the lock file vanished")

            return FailingRelease()

        async def stuck_digest(*args: Any) -> bytes:
            started.set()
            await asyncio.Event().wait()
            return b""

        monkeypatch.setattr(locker, "acquire", acquire)
        monkeypatch.setattr(tus.components.store, "digest", stuck_digest)
        path = await tus.create(5, **declared(b"12345"))
        assert (await tus.patch(path, 0, b"12345")).status_code == 204
        await started.wait()
    # The lifespan has ended: the job was cancelled and failed while stopping.
    (record,) = [r for r in caplog.records if "cancelled at shutdown" in r.getMessage()]
    assert record.exc_info is not None and "the lock file vanished" in str(record.exc_info[1])


async def test_a_failed_hook_delivery_is_logged(inprocess_factory: Factory, caplog: pytest.LogCaptureFixture) -> None:
    receiver = HookReceiver(lambda event: (500, "down"))
    try:
        async with inprocess_factory(hook_url=receiver.url, hook_events=("post-create",)) as tus:
            await tus.create(5)
            await until(logged(caplog, "not delivered (attempt 1): the hook answered 500"), "a warning per attempt")
    finally:
        receiver.close()
    (record,) = [r for r in caplog.records if "not delivered (attempt 1)" in r.getMessage()]
    assert record.levelno == logging.WARNING and "next try in 0.5 s" in record.getMessage()
