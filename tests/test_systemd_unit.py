"""examples/systemd/tusedge.service is a valid, sandboxed unit: ``systemd-analyze verify`` finds nothing to say
about it, ``systemd-analyze security`` rates its exposure low, its environment builds valid Settings, and it
gives the drain time to end before systemd's SIGKILL.

Both run offline on a throwaway root (``--root``): this machine's units, and an executable where the unit's
ExecStart expects tusedge. No systemd needs to run here (PID 1 is not systemd on the test machines)."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tusedge.config import Settings
from tusedge.server.serve import hypercorn_config

ROOT = Path(__file__).resolve().parent.parent
UNIT = ROOT / "examples" / "systemd" / "tusedge.service"
SYSTEM_UNITS = next((p for p in (Path("/usr/lib/systemd/system"), Path("/lib/systemd/system")) if p.is_dir()), None)


def _directives(section: str) -> list[tuple[str, str]]:
    found, current = [], ""
    for line in UNIT.read_text().splitlines():
        if line.startswith("["):
            current = line.strip("[]")
        elif current == section and "=" in line and not line.startswith("#"):
            key, _, value = line.partition("=")
            found.append((key, value))
    return found


@pytest.fixture
def unit_root(tmp_path: Path) -> Path:
    analyze = shutil.which("systemd-analyze")
    if analyze is None or SYSTEM_UNITS is None:
        pytest.fail("systemd-analyze is missing (apt-get install -y systemd); .ci/run installs it", pytrace=False)
    root = tmp_path / "root"
    shutil.copytree(SYSTEM_UNITS, root / "usr" / "lib" / "systemd" / "system", symlinks=True)
    (exec_start,) = [value for key, value in _directives("Service") if key == "ExecStart"]
    binary = root / shlex.split(exec_start)[0].lstrip("/")
    binary.parent.mkdir(parents=True)
    binary.write_text(f"#!{sys.executable}\nfrom tusedge.cli import main\nraise SystemExit(main())\n")
    binary.chmod(0o755)
    (root / "etc" / "systemd" / "system").mkdir(parents=True)
    shutil.copy(UNIT, root / "etc" / "systemd" / "system" / UNIT.name)
    return root


def test_systemd_analyze_verify_accepts_the_unit_without_a_word(unit_root: Path) -> None:
    done = subprocess.run(["systemd-analyze", "verify", f"--root={unit_root}", f"/etc/systemd/system/{UNIT.name}"],
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert done.returncode == 0 and not done.stdout.strip() and not done.stderr.strip(), done.stdout + done.stderr


def test_the_unit_is_sandboxed(unit_root: Path) -> None:
    done = subprocess.run(["systemd-analyze", "security", "--offline=yes", f"--root={unit_root}",
                           f"/etc/systemd/system/{UNIT.name}"], capture_output=True, text=True, timeout=60)  # fmt: skip
    match = re.search(r"Overall exposure level for \S+: ([\d.]+)", done.stdout)
    assert match is not None, done.stdout + done.stderr
    assert float(match.group(1)) <= 2.0, done.stdout  # systemd's scale: 0 (safe) .. 10 (unsafe); 1.7 when written
    service = dict(_directives("Service"))
    assert service["User"] != "root" and service["NoNewPrivileges"] == "yes" and service["ProtectSystem"] == "strict"


def test_the_units_environment_is_valid_and_it_waits_for_the_drain() -> None:
    env: dict[str, str] = {}
    for key, value in _directives("Service"):
        if key == "Environment":
            for pair in shlex.split(value):
                name, _, setting = pair.partition("=")
                env[name] = setting
    settings = Settings.from_env(env)
    assert settings.host == "0.0.0.0" and str(settings.data_dir) == "/var/lib/tusedge"
    service = dict(_directives("Service"))
    assert service["StateDirectory"] == "tusedge"  # the one folder it may write, under ProtectSystem=strict
    stop_timeout = float(service["TimeoutStopSec"])
    assert stop_timeout > settings.drain_timeout_s + hypercorn_config(settings).graceful_timeout
