"""``tusedge doctor``: reads this host's network and descriptor settings and says which ones limit uploads
(long fat ones: 10-20 GB over a path with a large bandwidth-delay product), and what to set instead.

The target is a link: ``rate_mbit`` over ``rtt_ms`` round trips. Its bandwidth-delay product (BDP) is what
must be in flight to fill it; the server's TCP receive buffer bounds the window it advertises, so it must
hold about twice the BDP (the kernel keeps part of the buffer for its own overhead).

Where each setting lives matters (docs/deploy.md#host-tuning), and this is what kernel 6.x does:

- per network namespace (a container or ``ip netns`` has its own, set them there): the ``net.ipv4.tcp_*``
  settings (congestion control, buffers, window scaling, ...) and ``net.core.somaxconn``;
- host-wide, set in the initial namespace: ``net.core.default_qdisc`` (not visible inside another
  namespace), ``net.core.rmem_max``/``wmem_max`` (shown read-only inside one on recent kernels), ``fs.*``;
- per process: the descriptor limit (``RLIMIT_NOFILE``), set by whatever starts the server (systemd's
  ``LimitNOFILE=``, ``docker run --ulimit``, ``ulimit -n``).
"""

from __future__ import annotations

import json
import resource
import textwrap
from collections.abc import Callable
from dataclasses import asdict, dataclass
from enum import StrEnum
from pathlib import Path

from tusedge.server.hypercorn_fixes.quic import UDP_RECEIVE_BUFFER_BYTES

PROC_SYS = Path("/proc/sys")
KIB, MIB = 1024, 1024 * 1024
WANTED_NOFILE = 65536
MIN_NOFILE = 4096  # below it: a few hundred uploads at once would exhaust it (a limit, not advice)
NOTSENT_LOWAT = 128 * KIB


class Verdict(StrEnum):
    OK = "ok"
    LIMITS = "limits"  # caps upload throughput or connections: fix it
    ADVICE = "advice"  # better set (downloads, HTTP/2 streams), but uploads are not capped by it
    UNKNOWN = "unknown"  # cannot be read from here


class Scope(StrEnum):
    NETNS = "network namespace"
    HOST = "host"
    PROCESS = "process"


@dataclass(frozen=True, slots=True)
class Target:
    rate_mbit: float = 1000.0
    rtt_ms: float = 100.0

    @property
    def bdp_bytes(self) -> int:
        return int(self.rate_mbit * 1e6 / 8 * self.rtt_ms / 1e3)

    @property
    def buffer_bytes(self) -> int:
        """A TCP buffer for this link: twice the BDP, as a power of two, at least 16 MiB."""
        size = 16 * MIB
        while size < 2 * self.bdp_bytes:
            size *= 2
        return size

    def mbit_with_window(self, window_bytes: float) -> float:
        return window_bytes * 8 / (self.rtt_ms / 1e3) / 1e6


@dataclass(frozen=True, slots=True)
class Finding:
    setting: str
    value: str | None  # None: not readable here
    verdict: Verdict
    scope: Scope
    why: str
    fix: str | None = None  # a sysctl.d line, or for the process scope what sets it

    @property
    def sysctl_line(self) -> str | None:
        return self.fix if self.fix and self.scope is not Scope.PROCESS and " = " in self.fix else None


Reader = Callable[[str], str | None]


def read_sysctl(name: str, root: Path = PROC_SYS) -> str | None:
    try:
        return " ".join((root / name.replace(".", "/")).read_text().split())
    except OSError:
        return None


def process_nofile(pid: int | None = None) -> tuple[int, int]:
    """(soft, hard) RLIMIT_NOFILE of this process, or of ``pid`` (from /proc/PID/limits)."""
    if pid is None:
        return resource.getrlimit(resource.RLIMIT_NOFILE)
    for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
        if line.startswith("Max open files"):
            soft, hard = line.split()[3:5]
            unlimited = resource.RLIM_INFINITY
            return (unlimited if soft == "unlimited" else int(soft), unlimited if hard == "unlimited" else int(hard))
    raise ValueError(f"no open files limit in /proc/{pid}/limits")


def _mib(n: float) -> str:
    return f"{n / MIB:g} MiB"


def examine(target: Target, read: Reader = read_sysctl, nofile: tuple[int, int] | None = None) -> list[Finding]:
    findings = [
        _congestion(read),
        _qdisc(read),
        _window_scaling(read, target),
        _receive_buffer(read, target),
        _autotuning(read),
        _send_buffer(read, target),
        _udp_receive(read),
        _core_wmem(read, target),
        _notsent_lowat(read),
        _slow_start_after_idle(read),
        _nofile(nofile or process_nofile()),
        _nr_open(read),
    ]
    return findings


def _congestion(read: Reader) -> Finding:
    name = "net.ipv4.tcp_congestion_control"
    value = read(name)
    if value is None:
        return Finding(name, None, Verdict.UNKNOWN, Scope.NETNS, "not readable here")
    if value == "bbr":
        return Finding(name, value, Verdict.OK, Scope.NETNS, "BBR paces to the path's measured bandwidth")
    available = (read("net.ipv4.tcp_available_congestion_control") or "").split()
    load = "" if "bbr" in available else " (first: modprobe tcp_bbr, and tcp_bbr in /etc/modules-load.d/bbr.conf)"
    return Finding(name, value, Verdict.LIMITS, Scope.NETNS,
                   f"{value} halves its window at every lost packet: over a long path with a little loss it uses a "
                   f"fraction of the link; BBR does not{load}", f"{name} = bbr")  # fmt: skip


def _qdisc(read: Reader) -> Finding:
    name = "net.core.default_qdisc"
    value = read(name)
    if value is None:
        why = "host-wide and not visible in this network namespace: check it on the host"
        return Finding(name, None, Verdict.UNKNOWN, Scope.HOST, why, f"{name} = fq")
    if value in ("fq", "fq_codel", "cake"):
        return Finding(name, value, Verdict.OK, Scope.HOST, "a fair-queueing qdisc: flows do not starve each other")
    return Finding(name, value, Verdict.ADVICE, Scope.HOST,
                   "fq is the qdisc BBR was made with (pacing, fair queues per flow); it matters most for downloads",
                   f"{name} = fq")  # fmt: skip


def _flag(read: Reader, name: str, good: str, bad: Verdict, why_good: str, why_bad: str) -> Finding:
    """A setting that should be ``good``; anything else is ``bad`` (a limit or advice) for ``why_bad``."""
    value = read(name)
    if value is None:
        return Finding(name, None, Verdict.UNKNOWN, Scope.NETNS, "not readable here")
    if value == good:
        return Finding(name, value, Verdict.OK, Scope.NETNS, why_good)
    return Finding(name, value, bad, Scope.NETNS, why_bad, f"{name} = {good}")


def _window_scaling(read: Reader, target: Target) -> Finding:
    cap = target.mbit_with_window(64 * KIB)
    return _flag(read, "net.ipv4.tcp_window_scaling", "1", Verdict.LIMITS, "windows above 64 KiB need it",
                 f"without it no window exceeds 64 KiB: at most {cap:.1f} Mbit/s at {target.rtt_ms:g} ms")  # fmt: skip


def _autotuning(read: Reader) -> Finding:
    return _flag(read, "net.ipv4.tcp_moderate_rcvbuf", "1", Verdict.LIMITS,
                 "receive buffers grow with the connection's needs",
                 "receive buffer autotuning is off: every upload's window stays at tcp_rmem's default")  # fmt: skip


def _slow_start_after_idle(read: Reader) -> Finding:
    return _flag(read, "net.ipv4.tcp_slow_start_after_idle", "0", Verdict.ADVICE, "an idle connection keeps its window",
                 "a connection idle for a moment starts again from a small window: downloads after a pause crawl "
                 "(an upload's window is the client's: set it there too)")  # fmt: skip


def _int(value: str | None) -> int | None:
    try:
        return int(value or "")
    except ValueError:
        return None


def _triple(value: str | None) -> tuple[int, int, int] | None:
    try:
        low, default, high = (int(part) for part in (value or "").split())
    except ValueError:
        return None
    return low, default, high


def _tcp_buffer(read: Reader, target: Target, name: str, bad: Verdict, why_good: Callable[[int], str],
                why_bad: Callable[[int, float], str]) -> Finding:  # fmt: skip
    """A TCP buffer triple (low, default, high) whose high should hold twice the target's BDP; below it,
    ``bad`` for ``why_bad(high, Mbit/s at most)``."""
    value = read(name)
    values = _triple(value)
    if values is None:
        return Finding(name, value, Verdict.UNKNOWN, Scope.NETNS, "not readable here")
    low, default, high = values
    if high >= 2 * target.bdp_bytes:
        return Finding(name, value, Verdict.OK, Scope.NETNS, why_good(high))
    cap = target.mbit_with_window(high / 2)
    return Finding(name, value, bad, Scope.NETNS, why_bad(high, cap), f"{name} = {low} {default} {target.buffer_bytes}")


def _receive_buffer(read: Reader, target: Target) -> Finding:
    return _tcp_buffer(read, target, "net.ipv4.tcp_rmem", Verdict.LIMITS,
                       lambda high: f"a receive window up to {_mib(high / 2)} fills {target.rate_mbit:g} Mbit/s",
                       lambda high, cap: f"the receive window of an upload stays under about {_mib(high / 2)}: at most "
                       f"{cap:.0f} Mbit/s per connection at {target.rtt_ms:g} ms (needed: {target.bdp_bytes / 1e6:.1f} "
                       "MB in flight)")  # fmt: skip


def _send_buffer(read: Reader, target: Target) -> Finding:
    return _tcp_buffer(read, target, "net.ipv4.tcp_wmem", Verdict.ADVICE,
                       lambda high: "send buffers fill the link (downloads)",
                       lambda high, cap: f"downloads (GET of finished uploads) reach at most about {cap:.0f} Mbit/s at "
                       f"{target.rtt_ms:g} ms; uploads are not limited by it")  # fmt: skip


def _number(read: Reader, name: str, scope: Scope, good: Callable[[int], bool], why_good: str, bad: Verdict,
            why_bad: Callable[[int], str], fix: str) -> Finding:  # fmt: skip
    """A setting of one number that is ``good`` or else ``bad`` (a limit or advice) for ``why_bad(number)``."""
    value = read(name)
    size = _int(value)
    if size is None:
        return Finding(name, value, Verdict.UNKNOWN, scope, "not readable here")
    if good(size):
        return Finding(name, value, Verdict.OK, scope, why_good)
    return Finding(name, value, bad, scope, why_bad(size), fix)


def _core_buffer(read: Reader, name: str, bad: Verdict, why_good: str, why_bad: Callable[[int], str]) -> Finding:
    """A host-wide socket buffer cap that should allow the QUIC socket's receive buffer."""
    return _number(read, name, Scope.HOST, lambda size: size >= UDP_RECEIVE_BUFFER_BYTES, why_good, bad, why_bad,
                   f"{name} = {max(UDP_RECEIVE_BUFFER_BYTES, 8 * MIB)}")  # fmt: skip


def _udp_receive(read: Reader) -> Finding:
    return _core_buffer(read, "net.core.rmem_max", Verdict.LIMITS,
                        f"the QUIC socket gets the {_mib(UDP_RECEIVE_BUFFER_BYTES)} receive buffer tusedge asks for",
                        lambda size: f"HTTP/3 uploads: tusedge asks for a {_mib(UDP_RECEIVE_BUFFER_BYTES)} UDP receive "
                        f"buffer and gets {_mib(size)}; bursts beyond it are dropped and resent (TCP is bounded by "
                        "tcp_rmem instead)")  # fmt: skip


def _core_wmem(read: Reader, target: Target) -> Finding:
    return _core_buffer(read, "net.core.wmem_max", Verdict.ADVICE,
                        "caps explicit SO_SNDBUF requests (tusedge makes none)",
                        lambda size: "caps explicit SO_SNDBUF requests: tusedge makes none, but a proxy or client on "
                        "this host may")  # fmt: skip


def _notsent_lowat(read: Reader) -> Finding:
    name = "net.ipv4.tcp_notsent_lowat"
    return _number(read, name, Scope.NETNS, lambda size: size <= NOTSENT_LOWAT,
                   "little unsent data waits in the kernel", Verdict.ADVICE,
                   lambda size: "no limit on unsent data queued in the kernel: HTTP/2 streams and window updates "
                   "sharing a connection with a download wait behind megabytes of it; 128 KiB costs no throughput",
                   f"{name} = {NOTSENT_LOWAT}")  # fmt: skip


def _nofile(limits: tuple[int, int]) -> Finding:
    soft, hard = limits
    value = f"{soft} (hard {hard})"
    if soft >= WANTED_NOFILE:
        return Finding("RLIMIT_NOFILE", value, Verdict.OK, Scope.PROCESS, "room for many connections and uploads")
    # A connection, and an upload being written (its file, its lock file): about three per upload in flight.
    why = (f"each connection and each upload being written hold descriptors (about 3 per upload in flight): "
           f"at {soft}, some {soft // 3} uploads at once before connections are refused")  # fmt: skip
    usable = max(soft, hard)
    if hard > soft:
        why += f"; tusedge raises its soft limit to the hard one ({hard}) when it starts"
    verdict = Verdict.LIMITS if usable < MIN_NOFILE else Verdict.ADVICE
    return Finding("RLIMIT_NOFILE", value, verdict, Scope.PROCESS, why,
                   "LimitNOFILE=1048576 in the systemd unit, --ulimit nofile=1048576:1048576 for a container, "
                   "or ulimit -n 1048576")  # fmt: skip


def _nr_open(read: Reader) -> Finding:
    name = "fs.nr_open"
    return _number(read, name, Scope.HOST, lambda size: size >= 1048576, "no process limit above it can be set",
                   Verdict.LIMITS, lambda size: "caps every process's descriptor limit",
                   f"{name} = 1048576")  # fmt: skip


# --- output ----------------------------------------------------------------------------------------------
def sysctl_conf(findings: list[Finding]) -> str:
    lines = [f.sysctl_line for f in findings if f.verdict is not Verdict.OK and f.sysctl_line]
    return "".join(f"{line}\n" for line in lines if line)


def render_text(findings: list[Finding], target: Target) -> str:
    out = [f"tusedge doctor: this host for uploads at {target.rate_mbit:g} Mbit/s over {target.rtt_ms:g} ms round "
           f"trips ({target.bdp_bytes / 1e6:.1f} MB in flight)\n"]  # fmt: skip
    for f in findings:
        out.append(f"{f.verdict.value.upper():8}{f.setting} = {f.value if f.value is not None else '?'}  [{f.scope}]")
        if f.verdict is not Verdict.OK:
            out += textwrap.wrap(f.why, 110, initial_indent=" " * 8, subsequent_indent=" " * 8)
            if f.fix:
                out += textwrap.wrap(f"set: {f.fix}", 110, initial_indent=" " * 8, subsequent_indent=" " * 13)
    conf = sysctl_conf(findings)
    if conf:
        out.append("\nTo apply, put these lines in /etc/sysctl.d/90-tusedge.conf and run `sysctl --system` (the")
        out.append("network namespace ones inside each container or namespace the server runs in; docs/deploy.md):\n")
        out.append(conf.rstrip("\n"))
    return "\n".join(out) + "\n"


def render_json(findings: list[Finding], target: Target) -> str:
    return json.dumps({"target": {**asdict(target), "bdp_bytes": target.bdp_bytes},
                       "findings": [asdict(f) for f in findings], "sysctl_conf": sysctl_conf(findings)},
                      indent=2)  # fmt: skip


def exit_status(findings: list[Finding]) -> int:
    """1 when something limits uploads, else 0."""
    return 1 if any(f.verdict is Verdict.LIMITS for f in findings) else 0
