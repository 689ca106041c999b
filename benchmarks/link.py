"""A constrained link for the benchmark: a veth pair into a network namespace the suite creates (and
removes), with the server inside and the client on the host side; the host side's egress — the upload
direction — is shaped with tc. netem is not available in this kernel, so there is no added delay.

``tbf`` limits the link as a whole (a slow uplink). Per-flow caps (``fq maxrate``), where parallel uploads
would gain, are not available in this kernel (neither fq nor netem is built in).
"""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Iterator

NAMESPACE = "tusedge-bench"
HOST_IF, NS_IF = "tbh0", "tbn0"
# The project's own test hosts, inside the namespace created here (never routed anywhere else).
HOST_ADDR, NS_ADDR = "10.203.77.1", "10.203.77.2"


def _ip(*args: str, ns: bool = False) -> None:
    prefix = ["ip", "netns", "exec", NAMESPACE] if ns else []
    subprocess.run([*prefix, "ip", *args], check=True, capture_output=True)


@contextlib.contextmanager
def namespace_link() -> Iterator[list[str]]:
    """Create the namespace and the veth pair; yield the command prefix that runs a program inside."""
    teardown()
    subprocess.run(["ip", "netns", "add", NAMESPACE], check=True, capture_output=True)
    try:
        _ip("link", "add", HOST_IF, "type", "veth", "peer", "name", NS_IF)
        _ip("link", "set", NS_IF, "netns", NAMESPACE)
        _ip("addr", "add", f"{HOST_ADDR}/30", "dev", HOST_IF)
        _ip("link", "set", HOST_IF, "up")
        _ip("addr", "add", f"{NS_ADDR}/30", "dev", NS_IF, ns=True)
        _ip("link", "set", NS_IF, "up", ns=True)
        _ip("link", "set", "lo", "up", ns=True)
        yield ["ip", "netns", "exec", NAMESPACE]
    finally:
        teardown()


def teardown() -> None:
    subprocess.run(["ip", "link", "del", HOST_IF], capture_output=True)
    subprocess.run(["ip", "netns", "del", NAMESPACE], capture_output=True)


def shape(kind: str, rate_mbit: int) -> None:
    """Replace the upload direction's qdisc; ``kind`` is ``tbf`` (the whole link at ``rate_mbit``)."""
    subprocess.run(["tc", "qdisc", "del", "dev", HOST_IF, "root"], capture_output=True)
    if kind != "tbf":
        raise ValueError(f"unsupported shaping {kind!r}")
    args = ["tbf", "rate", f"{rate_mbit}mbit", "burst", "256kb", "latency", "100ms"]
    subprocess.run(["tc", "qdisc", "add", "dev", HOST_IF, "root", *args], check=True, capture_output=True)
