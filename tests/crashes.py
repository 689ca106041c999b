"""kill -9 of a server while uploads stream, and what each kill cost: the bytes the server had read from
request bodies but not yet made durable, which the clients must send again when they resume.

The server counts both (``tusedge_body_bytes_read`` and ``tusedge_bytes_received``, reset with every start),
so the loss of one kill is their difference read just before the ``SIGKILL``. Bytes read in the few
milliseconds between that read and the kill are not counted; everything else is exact.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from metrics_samples import samples
from server_process import ServerProcess

MIB = 1024 * 1024


def unsynced(server: ServerProcess) -> tuple[float, float]:
    """(body bytes read, bytes committed) since the server started."""
    found = samples(server.origin)
    return found.get(("tusedge_body_bytes_read_total", ()), 0.0), found.get(("tusedge_bytes_received_total", ()), 0.0)


@dataclass
class CrashLog:
    losses: list[int] = field(default_factory=list)  # bytes to re-send, per kill (all uploads together)
    read: list[int] = field(default_factory=list)  # body bytes the server had read, per lifetime

    def kill_and_restart(self, server: ServerProcess) -> int:
        """SIGKILL the server (and its workers), start it again on the same port and data; the loss."""
        read, committed = unsynced(server)
        server.kill()
        server.start()
        loss = int(read - committed)
        self.losses.append(loss)
        self.read.append(int(read))
        return loss

    def summary(self) -> str:
        if not self.losses:
            return "no kills"
        mib = [f"{loss / MIB:.1f}" for loss in self.losses]
        return f"{len(self.losses)} kills, MiB re-sent per kill: {', '.join(mib)} (max {max(self.losses) / MIB:.1f})"
