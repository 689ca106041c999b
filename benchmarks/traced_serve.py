"""``tusedge serve`` under tracemalloc, for the soak's ``--trace-memory DIR`` (benchmarks/soak.py): every
``SOAK_TRACE_INTERVAL_S`` seconds (20; not ``TUSEDGE_*``, the server refuses unknown ones) a snapshot to
DIR/snap-NNN.pickle and a line to DIR/series.txt (seconds, RSS, traced Python memory, live objects,
threads). Diagnosis only: tracing makes the server several times slower and its RSS mostly tracemalloc's own.

    python -m benchmarks.traced_serve DIR serve --port 0 ...
"""

from __future__ import annotations

import gc
import os
import sys
import threading
import time
import tracemalloc
from pathlib import Path

MIB = 1024 * 1024


def _rss() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _sample(out: Path, every_s: float) -> None:
    started = time.monotonic()
    for n in range(1_000_000):
        time.sleep(every_s)
        traced, _peak = tracemalloc.get_traced_memory()
        partial = out / f".snap-{n:03d}.pickle"
        tracemalloc.take_snapshot().dump(str(partial))
        partial.rename(out / f"snap-{n:03d}.pickle")  # whole or absent, whenever the server is stopped
        with (out / "series.txt").open("a") as series:
            series.write(f"{time.monotonic() - started:.0f} rss_mib={_rss() / MIB:.1f} traced_mib={traced / MIB:.1f}"
                         f" objects={len(gc.get_objects())} threads={threading.active_count()}\n")  # fmt: skip


def main() -> int:
    out = Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    # The server's modules are imported before tracing starts: imports under tracemalloc take ~40 s, and
    # what a soak looks for is what the running server allocates.
    import tusedge.server.app
    import tusedge.server.serve  # noqa: F401
    from tusedge.cli import main as tusedge_main

    tracemalloc.start(int(os.environ.get("SOAK_TRACE_FRAMES", "6")))
    every_s = float(os.environ.get("SOAK_TRACE_INTERVAL_S", "20"))
    threading.Thread(target=_sample, args=(out, every_s), daemon=True).start()
    return tusedge_main(sys.argv[2:])


if __name__ == "__main__":
    raise SystemExit(main())
