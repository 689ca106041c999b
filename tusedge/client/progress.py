"""Upload progress: a tracker the uploader updates (bytes per part) and a printer that renders it — a bar
redrawn in place on a terminal, plain lines at intervals otherwise (logs, CI, pipes)."""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from typing import TextIO


class Progress:
    """Bytes done per part: confirmed by the server plus those sent since. After a failed PATCH the
    uploader sets the part back to the offset the server reports."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.total = 0
        self.parts = 0
        self.phase = "connecting"
        self.resumed = 0
        self._done: dict[int, int] = {}
        self._clock = clock
        self._samples: deque[tuple[float, int]] = deque()

    def start(self, total: int, parts: int) -> None:
        self.total, self.parts, self.phase = total, parts, "uploading"

    def resume(self, part: int, offset: int) -> None:
        """The part starts at ``offset`` (bytes the server had); they do not count toward the rate."""
        self._done[part] = offset
        self.resumed += offset

    def set(self, part: int, done: int) -> None:
        self._done[part] = done

    def advance(self, part: int, n: int) -> None:
        self._done[part] = self._done.get(part, 0) + n

    @property
    def done(self) -> int:
        return sum(self._done.values())

    def sample(self, window_s: float = 5.0) -> tuple[int, float | None]:
        """(bytes done, bytes/s over about the last ``window_s``); the rate is None until two samples."""
        now, done = self._clock(), self.done
        if self.phase not in ("uploading", "done"):
            self._samples.clear()
            return done, None
        self._samples.append((now, done - self.resumed))
        while len(self._samples) > 2 and now - self._samples[1][0] >= window_s:
            self._samples.popleft()
        first_t, first_sent = self._samples[0]
        if now - first_t <= 0:
            return done, None
        return done, max(0.0, (done - self.resumed - first_sent) / (now - first_t))


def format_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def format_eta(seconds: float) -> str:
    seconds = int(seconds + 0.5)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def render(progress: Progress, done: int, rate: float | None, *, bar_width: int = 0) -> str:
    """One status line: bytes, percentage, rate (MB/s, 10^6 bytes), ETA, parts."""
    if progress.phase not in ("uploading", "done"):
        return progress.phase
    total = max(progress.total, 1)
    fraction = min(1.0, done / total)
    line = f"{format_bytes(done)} / {format_bytes(progress.total)} {fraction * 100:5.1f}%"
    if bar_width:
        filled = int(fraction * bar_width)
        line = f"[{'#' * filled}{'.' * (bar_width - filled)}] " + line
    if rate is not None:
        line += f"  {rate / 1e6:.1f} MB/s"
        if rate > 0 and done < progress.total:
            line += f"  ETA {format_eta((progress.total - done) / rate)}"
    if progress.parts > 1:
        line += f"  ({progress.parts} parts)"
    return line


class ProgressPrinter:
    """Renders a Progress to ``stream`` until stopped: in place every 0.2 s on a terminal, a new line every
    ``interval_s`` otherwise."""

    def __init__(self, progress: Progress, stream: TextIO, *, tty: bool | None = None, interval_s: float = 5.0):
        self.progress = progress
        self.stream = stream
        self.tty = stream.isatty() if tty is None else tty
        self.interval_s = 0.2 if self.tty else interval_s
        self._last_line = ""

    def print_once(self) -> None:
        done, rate = self.progress.sample()
        line = render(self.progress, done, rate, bar_width=24 if self.tty else 0)
        if self.tty:
            self.stream.write(f"\r{line}\x1b[K")
        elif line != self._last_line:
            self.stream.write(f"{line}\n")
        self._last_line = line
        self.stream.flush()

    async def run(self) -> None:
        """Print until cancelled."""
        while True:
            self.print_once()
            await asyncio.sleep(self.interval_s)

    def finish(self) -> None:
        self.print_once()
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()
