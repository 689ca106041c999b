"""``--workers N``: N server processes on the sockets this process binds, each of them draining on SIGTERM.

Hypercorn's own multi-process runner (``hypercorn.run.run``) turns a SIGTERM of the parent into an event
its workers poll; they then close their listeners at once and cancel what still runs after
``graceful_timeout``, so no worker could drain (:mod:`tusedge.server.drain`). Here each worker runs the
way Hypercorn runs a single process, with its own SIGINT and SIGTERM handling, and this parent only
forwards the signals it receives (systemd's default ``KillMode=control-group`` sends SIGTERM to every
process at once; ``podman stop`` and ``docker stop`` to the parent only: both end the same way).

A worker that exits on its own (a crash, ``kill -9``) stops the node: the others drain and exit, and the
exit status says so, so a process manager restarts all of it (Hypercorn's runner does the same).
"""

from __future__ import annotations

import copy
import logging
import multiprocessing
import os
import signal
import socket
from collections.abc import Sequence
from multiprocessing.connection import wait
from multiprocessing.process import BaseProcess
from types import FrameType

from hypercorn.config import Config, Sockets

from tusedge.server.quic_steering import Steering

log = logging.getLogger("tusedge")

FORWARDED = (signal.SIGTERM, signal.SIGINT)
# A hangup (the terminal went away) must not kill this parent alone and leave its workers serving: it drains
# the node like SIGTERM.
AS_SIGTERM = (signal.SIGHUP,)


def run_workers(
    config: Config, count: int, more_quic: Sequence[socket.socket] = (), steering: Sequence[Steering] | None = None
) -> int:
    """``more_quic``: with HTTP/3, the UDP sockets (SO_REUSEPORT, one port) of workers 2..N; the first
    worker takes the one of ``config.quic_bind``. Each worker then reads only its own QUIC socket.
    ``steering``: one per worker, when the steering program is attached to their group (quic_steering)."""
    from hypercorn.asyncio.run import asyncio_worker, uvloop_worker

    worker = uvloop_worker if config.worker_class == "uvloop" else asyncio_worker
    sockets = config.create_sockets()
    quic_of_worker = [sockets.quic_sockets, *([sock] for sock in more_quic)]
    if more_quic and (len(quic_of_worker) != count or len(sockets.quic_sockets) != 1):
        raise ValueError("one QUIC socket per worker")
    processes: list[BaseProcess] = []
    stopping = False

    def forward(signum: int, _frame: FrameType | None = None) -> None:
        nonlocal stopping
        stopping = True
        for process in processes:
            if process.pid is not None and process.exitcode is None:
                try:
                    os.kill(process.pid, signum)
                except ProcessLookupError:
                    pass

    previous = {signum: signal.signal(signum, forward) for signum in FORWARDED}
    previous.update({signum: signal.signal(signum, lambda *_: forward(signal.SIGTERM)) for signum in AS_SIGTERM})
    exitcode = 0
    try:
        context = multiprocessing.get_context("spawn")
        for _ in range(count):
            index = len(processes)
            own = (
                Sockets(sockets.secure_sockets, sockets.insecure_sockets, quic_of_worker[index])
                if more_quic
                else sockets
            )
            own_config = config
            if steering is not None:
                own_config = copy.copy(config)
                own_config.tusedge_quic_steering = steering[index]  # type: ignore[attr-defined]
            process = context.Process(target=worker, kwargs={"config": own_config, "sockets": own})
            process.start()
            processes.append(process)
            if stopping:  # a signal came while we were starting them: the new one gets it too
                forward(signal.SIGTERM)
        running = list(processes)
        while running:
            wait([process.sentinel for process in running])
            for done in [p for p in running if p.exitcode is not None]:
                running.remove(done)
                done.join()
                status = done.exitcode or 0
                if not stopping:
                    log.error("worker %d exited with status %s; stopping the others", done.pid, status)
                    exitcode = status if status > 0 else 1
                    forward(signal.SIGTERM)
                elif status and not exitcode and -status not in FORWARDED:  # killed while starting: a stop
                    exitcode = status if status > 0 else 1
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        for sock in [*sockets.secure_sockets, *sockets.insecure_sockets, *sockets.quic_sockets, *more_quic]:
            sock.close()
    return exitcode
