"""Worker threads for blocking calls (file operations, locks): ``await run_blocking(func, *args)``.

A small pool of daemon threads fed by one ``queue.SimpleQueue``; a finished call wakes the event loop with
``call_soon_threadsafe``. It replaces ``anyio.to_thread.run_sync``, whose capacity limiter, cancel scope,
context copy and per-call bookkeeping cost ~30 us of event-loop time per call against ~3 us here (measured
in docs/performance.md), and a small upload makes about ten such calls.

A call is never abandoned: when the awaiting task is cancelled, it still waits for the call to finish and
only then raises ``CancelledError``, so nobody moves on while a write is half done.
"""

from __future__ import annotations

import asyncio
import os
import queue
import threading
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar

P = ParamSpec("P")
T = TypeVar("T")

MAX_THREADS = 40  # as many as anyio's default limiter allowed: a slow disk can hold one per fsync in flight

_Job = tuple[Callable[[], Any], asyncio.Future[Any], asyncio.AbstractEventLoop]


class _Pool:
    def __init__(self, max_threads: int) -> None:
        self.max_threads = max_threads
        self.jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self.threads = 0
        self.idle = 0
        self.mutex = threading.Lock()

    def submit(self, job: _Job) -> None:
        self.jobs.put(job)
        with self.mutex:
            # Another thread only when none is idle to take this job (idle counts those waiting on the queue).
            if self.idle > 0:
                self.idle -= 1
                return
            if self.threads >= self.max_threads:
                return
            self.threads += 1
        threading.Thread(target=self._work, name="tusedge-worker", daemon=True).start()

    def _work(self) -> None:
        jobs = self.jobs
        while True:
            job = jobs.get()
            if job is None:
                return
            func, future, loop = job
            try:
                result: Any = func()
            except BaseException as exc:
                deliver(loop, future, None, exc)
            else:
                deliver(loop, future, result, None)
            del job, func, future, loop
            with self.mutex:
                self.idle += 1


def deliver(
    loop: asyncio.AbstractEventLoop, future: asyncio.Future[Any], result: Any, exc: BaseException | None
) -> None:
    """From a worker thread: settle ``future`` on its loop with ``result`` or ``exc`` (unless it was settled,
    e.g. cancelled, meanwhile)."""
    try:
        loop.call_soon_threadsafe(_set, future, result, exc)
    except RuntimeError:  # the loop is closed: nobody is waiting any more
        pass


def _set(future: asyncio.Future[Any], result: Any, exc: BaseException | None) -> None:
    if future.done():
        return
    if exc is not None:
        future.set_exception(exc)
    else:
        future.set_result(result)


_pool = _Pool(MAX_THREADS)


def _reset_after_fork() -> None:
    global _pool
    _pool = _Pool(MAX_THREADS)  # the parent's threads do not exist in a forked child


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_after_fork)


async def run_blocking(func: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """Run ``func(*args, **kwargs)`` in a worker thread and return its result. Not abandoned on
    cancellation: the caller waits for the call to finish before the cancellation goes on."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()
    _pool.submit((lambda: func(*args, **kwargs), future, loop))
    return await settled(future)


async def settled(future: asyncio.Future[T]) -> T:
    """The result of ``future``, which a thread settles (:func:`deliver`). Not abandoned on cancellation:
    the caller waits for the thread to settle it before the cancellation goes on."""
    try:
        return await asyncio.shield(future)
    except asyncio.CancelledError:
        while not future.done():
            try:
                await asyncio.wait((future,))
            except asyncio.CancelledError:
                continue
        if not future.cancelled():
            future.exception()  # retrieved: a failure nobody can handle now is not logged as unretrieved
        raise
