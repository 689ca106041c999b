"""``tusedge doctor`` run inside a network namespace made for the test with deliberately poor TCP settings, and
a descriptor limit of 1024: it names each one, says what it costs, and what to set.

What can be made poor there is what this kernel keeps per network namespace, the ``net.ipv4.tcp_*``
settings; the test first shows that setting them in the namespace leaves the host alone. The host-wide
ones (``net.core.rmem_max``, ``default_qdisc``) cannot be changed from inside a namespace (this kernel
refuses the write, or does not show the file there): for those the test checks that the doctor reports
exactly what the namespace sees, and labels them host settings."""

from __future__ import annotations

import json
import os
import resource
import secrets
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
POOR = {
    "net.ipv4.tcp_congestion_control": "reno",
    "net.ipv4.tcp_window_scaling": "0",
    "net.ipv4.tcp_rmem": "4096 16384 65536",
    "net.ipv4.tcp_moderate_rcvbuf": "0",
    "net.ipv4.tcp_wmem": "4096 16384 65536",
    "net.ipv4.tcp_notsent_lowat": "4294967295",
    "net.ipv4.tcp_slow_start_after_idle": "1",
}
GOOD = {
    "net.ipv4.tcp_congestion_control": "bbr",
    "net.ipv4.tcp_window_scaling": "1",
    "net.ipv4.tcp_rmem": "4096 131072 33554432",
    "net.ipv4.tcp_moderate_rcvbuf": "1",
    "net.ipv4.tcp_wmem": "4096 16384 33554432",
    "net.ipv4.tcp_notsent_lowat": "131072",
    "net.ipv4.tcp_slow_start_after_idle": "0",
}
HOST_WIDE = ("net.core.rmem_max", "net.core.wmem_max", "net.core.default_qdisc")


def _sysctl_path(name: str) -> Path:
    return Path("/proc/sys") / name.replace(".", "/")


def host_value(name: str) -> str | None:
    path = _sysctl_path(name)
    return " ".join(path.read_text().split()) if path.exists() else None


class Namespace:
    def __init__(self, name: str) -> None:
        self.name = name

    def run(self, *cmd: str, nofile: int | None = None) -> subprocess.CompletedProcess[str]:
        def limit() -> None:  # in the child, before it runs: soft and hard descriptor limits
            if nofile is not None:
                resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))

        return subprocess.run(["ip", "netns", "exec", self.name, *cmd], capture_output=True, text=True, timeout=60,
                              preexec_fn=limit, cwd=ROOT)  # fmt: skip

    def value(self, name: str) -> str | None:
        done = self.run("cat", str(_sysctl_path(name)))
        return " ".join(done.stdout.split()) if done.returncode == 0 else None

    def set(self, name: str, value: str) -> bool:
        """Write the setting in the namespace; True if it took (sysctl(8) exits 0 even when refused)."""
        done = self.run("sh", "-c", 'printf "%s\\n" "$1" > "$2"', "sh", value, str(_sysctl_path(name)))
        return done.returncode == 0 and self.value(name) == value

    def doctor(self, nofile: int) -> tuple[int, dict[str, dict[str, Any]]]:
        done = self.run(sys.executable, "-m", "tusedge", "doctor", "--json", nofile=nofile)
        assert done.returncode in (0, 1), done.stderr
        report = json.loads(done.stdout)
        return done.returncode, {f["setting"]: f for f in report["findings"]}


@pytest.fixture
def netns() -> Iterator[Namespace]:
    if os.geteuid() != 0 or shutil.which("ip") is None or shutil.which("sysctl") is None:
        pytest.skip("creating a network namespace needs root, iproute2 and procps (CI runs as root with both)")
    name = f"tusedge-doctor-{secrets.token_hex(4)}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        yield Namespace(name)
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)


def test_doctor_names_each_poor_setting_of_its_network_namespace(netns: Namespace) -> None:
    before = {name: host_value(name) for name in POOR}
    for name, value in POOR.items():
        assert netns.set(name, value), name
        assert netns.value(name) == value
    assert {name: host_value(name) for name in POOR} == before  # per namespace: the host is untouched

    status, found = netns.doctor(nofile=1024)
    assert status == 1  # something limits uploads
    cc = found["net.ipv4.tcp_congestion_control"]
    assert (cc["value"], cc["verdict"], cc["scope"]) == ("reno", "limits", "network namespace")
    assert cc["fix"] == "net.ipv4.tcp_congestion_control = bbr"
    scaling = found["net.ipv4.tcp_window_scaling"]
    assert scaling["verdict"] == "limits" and "64 KiB" in scaling["why"] and "5.2 Mbit/s" in scaling["why"]
    rmem = found["net.ipv4.tcp_rmem"]
    assert rmem["value"] == "4096 16384 65536" and rmem["verdict"] == "limits"
    assert "at most 3 Mbit/s" in rmem["why"]  # a 32 KiB window over 100 ms
    assert rmem["fix"] == "net.ipv4.tcp_rmem = 4096 16384 33554432"  # twice 12.5 MB, as a power of two
    assert found["net.ipv4.tcp_moderate_rcvbuf"]["verdict"] == "limits"
    assert found["net.ipv4.tcp_wmem"]["verdict"] == "advice"  # downloads, not uploads
    assert found["net.ipv4.tcp_notsent_lowat"]["fix"] == "net.ipv4.tcp_notsent_lowat = 131072"
    assert found["net.ipv4.tcp_slow_start_after_idle"]["fix"] == "net.ipv4.tcp_slow_start_after_idle = 0"
    nofile = found["RLIMIT_NOFILE"]
    assert (nofile["value"], nofile["verdict"], nofile["scope"]) == ("1024 (hard 1024)", "limits", "process")
    assert "LimitNOFILE=" in nofile["fix"]


def test_doctor_reports_host_wide_settings_as_the_namespace_sees_them(netns: Namespace) -> None:
    _, found = netns.doctor(nofile=1024)
    for name in HOST_WIDE:
        seen = netns.value(name)
        if seen is not None:  # visible: it is the host's value, and cannot be set from in here
            assert seen == host_value(name)
            assert not netns.set(name, "8388608" if "mem" in name else "fq")
        assert found[name]["value"] == seen
        assert found[name]["scope"] == "host"
        if seen is None:
            assert found[name]["verdict"] == "unknown" and "check it on the host" in found[name]["why"]


def test_doctor_finds_nothing_to_fix_in_a_well_tuned_namespace(netns: Namespace) -> None:
    for name, value in GOOD.items():
        assert netns.set(name, value), name
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]  # raising it needs CAP_SYS_RESOURCE, not always ours
    _, found = netns.doctor(nofile=min(hard, 1048576))
    for name in GOOD:
        assert found[name]["verdict"] == "ok", found[name]
    assert found["RLIMIT_NOFILE"]["verdict"] == ("ok" if hard >= 65536 else "advice")
