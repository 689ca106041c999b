"""tusedge.locking.filelock: flock-based locks on a real tmp dir, held in this process and in real child processes.

STYLE habit 11: "Locks can be asked to let go ... A timeout raises a typed UploadLocked"."""

from __future__ import annotations

import asyncio
import select
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tusedge.errors import UploadLocked
from tusedge.locking.filelock import FileLocker

UPLOAD = "a" * 32

# A child process that takes the lock through FileLocker and then either sleeps holding it ("hold") or
# waits until someone asks for the lock and releases it ("yield"). It reports each step on stdout.
_CHILD = """
import asyncio, sys
from pathlib import Path
from tusedge.locking.filelock import FileLocker

async def main() -> None:
    locker = FileLocker(Path(sys.argv[1]))
    locker.setup()
    lock = await locker.acquire(sys.argv[2], 10)
    print("locked", flush=True)
    if sys.argv[3] == "yield":
        while not await lock.release_requested():
            await asyncio.sleep(0.02)
        print("asked", flush=True)
        await lock.release()
        print("released", flush=True)
    await asyncio.sleep(60)

asyncio.run(main())
"""


class Child:
    def __init__(self, locks: Path, mode: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _CHILD, str(locks), UPLOAD, mode], stdout=subprocess.PIPE, bufsize=0
        )

    def expect(self, line: str, timeout_s: float = 30.0) -> None:
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout_s
        got = b""
        while not got.endswith(b"\n"):
            ready, _, _ = select.select([self.proc.stdout], [], [], max(0.0, deadline - time.monotonic()))
            assert ready, f"child did not say {line!r} within {timeout_s}s"
            byte = self.proc.stdout.read(1)
            assert byte, f"child exited ({self.proc.poll()}) before saying {line!r}"
            got += byte
        assert got.decode().strip() == line

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=10)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


@pytest.fixture
def children() -> Iterator[list[Child]]:
    started: list[Child] = []
    try:
        yield started
    finally:
        for child in started:
            child.kill()


def _locker(tmp_path: Path) -> FileLocker:
    locker = FileLocker(tmp_path / "locks")
    locker.setup()
    return locker


async def test_acquire_and_release(tmp_path: Path) -> None:
    locker = _locker(tmp_path)
    lock = await locker.acquire(UPLOAD, 1.0)
    assert lock.upload_id == UPLOAD
    assert (tmp_path / "locks" / f"{UPLOAD}.lock").exists()
    assert not await lock.release_requested()
    await lock.release()
    await lock.release()  # idempotent
    again = await locker.acquire(UPLOAD, 0.0)
    await again.release()


async def test_second_acquire_in_the_same_process_times_out(tmp_path: Path) -> None:
    """One writer per upload: a second request waits at most lock_timeout_s, then gets UploadLocked (423)."""
    locker = _locker(tmp_path)
    holder = await locker.acquire(UPLOAD, 1.0)
    started = time.monotonic()
    with pytest.raises(UploadLocked) as info:
        await locker.acquire(UPLOAD, 0.3)
    waited = time.monotonic() - started
    assert info.value.status == 423
    assert 0.3 <= waited < 3.0
    # The waiter withdrew its release request when it gave up.
    assert not (tmp_path / "locks" / f"{UPLOAD}.release").exists()
    assert not await holder.release_requested()
    await holder.release()


async def test_locks_of_different_uploads_are_independent(tmp_path: Path) -> None:
    locker = _locker(tmp_path)
    first = await locker.acquire(UPLOAD, 0.0)
    second = await locker.acquire("b" * 32, 0.0)
    assert not await first.release_requested()
    await first.release()
    await second.release()


async def test_waiting_acquirer_asks_the_holder_to_release(tmp_path: Path) -> None:
    """STYLE habit 11: a new PATCH asks the stale holder to stop rather than queueing behind it."""
    locker = _locker(tmp_path)
    holder = await locker.acquire(UPLOAD, 1.0)
    waiter = asyncio.ensure_future(locker.acquire(UPLOAD, 10.0))
    deadline = time.monotonic() + 5
    while not await holder.release_requested():
        assert time.monotonic() < deadline, "the holder was never asked to release"
        assert not waiter.done()
        await asyncio.sleep(0.01)
    await holder.release()
    lock = await asyncio.wait_for(waiter, 5)
    assert not (tmp_path / "locks" / f"{UPLOAD}.release").exists()
    assert not await lock.release_requested()
    await lock.release()


async def test_ask_release_false_does_not_create_the_release_file(tmp_path: Path) -> None:
    locker = _locker(tmp_path)
    holder = await locker.acquire(UPLOAD, 1.0)
    release_file = tmp_path / "locks" / f"{UPLOAD}.release"
    waiter = asyncio.ensure_future(locker.acquire(UPLOAD, 0.5, ask_release=False))
    seen = False
    while not waiter.done():
        seen = seen or release_file.exists()
        await asyncio.sleep(0.01)
    with pytest.raises(UploadLocked):
        waiter.result()
    assert not seen
    assert not release_file.exists()
    assert not await holder.release_requested()
    await holder.release()


async def test_forget_removes_lock_and_release_files(tmp_path: Path) -> None:
    locker = _locker(tmp_path)
    holder = await locker.acquire(UPLOAD, 1.0)
    with pytest.raises(UploadLocked):
        await locker.acquire(UPLOAD, 0.05)  # asks, then withdraws on timeout
    (tmp_path / "locks" / f"{UPLOAD}.release").touch()
    await locker.forget(UPLOAD)
    await holder.release()
    assert list((tmp_path / "locks").iterdir()) == []
    await locker.forget(UPLOAD)  # nothing left to forget: not an error


async def test_lock_held_by_another_process_blocks_until_it_dies(tmp_path: Path, children: list[Child]) -> None:
    """--workers N: one writer per upload across worker processes; flock locks die with their process, so
    a killed worker never leaves a lock behind."""
    locker = _locker(tmp_path)
    child = Child(tmp_path / "locks", "hold")
    children.append(child)
    child.expect("locked")
    with pytest.raises(UploadLocked):
        await locker.acquire(UPLOAD, 0.3)
    child.kill()  # SIGKILL: no cleanup code runs in the child
    assert child.proc.returncode == -9
    lock = await locker.acquire(UPLOAD, 2.0)
    await lock.release()


async def test_release_request_reaches_a_holder_in_another_process(tmp_path: Path, children: list[Child]) -> None:
    """A request in one worker asks the holder in another worker to let go, and gets the lock when it does."""
    locker = _locker(tmp_path)
    child = Child(tmp_path / "locks", "yield")
    children.append(child)
    child.expect("locked")
    lock = await locker.acquire(UPLOAD, 20.0)
    child.expect("asked")
    child.expect("released")
    assert child.proc.poll() is None  # it let go while still running
    assert not (tmp_path / "locks" / f"{UPLOAD}.release").exists()
    await lock.release()
