"""The container image, built and run for real: scripts/build-image makes the wheelhouse on this host and builds
the Dockerfile with podman on a base made from Debian packages by mmdebstrap (no registry is reachable from
the test machines). The container runs with a volume, as a non-root user, on a read-only root file system,
published on 127.0.0.1; our client uploads to it from the host, in parallel, and resumes after the
container is killed (``podman kill``) and started again. SHA-256, /metrics, /readyz and the upload page are
checked from the host, and a stop drains.

Podman here: Debian's 4.3 as root, with runc and cgroupfs (crun fails on this kernel's cgroup layout) and
explicit ulimits (the default nofile limit is refused). The base image is cached between runs on the
machine (scripts/build-image reuses it for 7 days while its recipe is unchanged); the image under test is
built fresh, under a name of its own, and removed afterwards.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from proxy_process import LocalEndpoint, free_port
from server_process import ROOT
from upload_files import random_file, served_sha256

from tusedge.client.fingerprint import fingerprint
from tusedge.client.resume import ResumeStore

MIB = 1024 * 1024
TUS = {"Tus-Resumable": "1.0.0"}
PODMAN = ["podman", "--runtime", "runc", "--cgroup-manager=cgroupfs"]
ULIMITS = ["--ulimit", "nofile=20000:20000", "--ulimit", "nproc=4096:4096"]


def podman(*args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*PODMAN, *args], capture_output=True, text=True, check=check, timeout=timeout)


@pytest.fixture(scope="module")
def image() -> Iterator[str]:
    if os.geteuid() != 0 or shutil.which("podman") is None or shutil.which("mmdebstrap") is None:
        pytest.skip("the image test needs root, podman, runc and mmdebstrap (.ci/run installs them)")
    tag = f"localhost/tusedge-e2e:{os.getpid()}-{secrets.token_hex(3)}"
    started = time.monotonic()
    build = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "build-image"), "--debian-base", "bookworm", "--tag", tag,
         "--engine", " ".join(PODMAN), "--", *ULIMITS],
        cwd=ROOT, capture_output=True, text=True, timeout=1200,
    )  # fmt: skip
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    print(f"image {tag} built in {time.monotonic() - started:.0f} s")
    try:
        yield tag
    finally:
        keep_as_build_cache(tag)


def keep_as_build_cache(tag: str) -> None:
    """The image under test becomes ``localhost/tusedge-e2e:last`` (its layers are the next run's build cache,
    keyed on content: a changed dependency or source file is a new layer) and the previous one goes."""
    last = "localhost/tusedge-e2e:last"
    previous = podman("image", "inspect", "--format", "{{.Id}}", last, check=False).stdout.strip()
    podman("tag", tag, last)
    podman("untag", last, tag, check=False)  # only the run's own name: last stays
    current = podman("image", "inspect", "--format", "{{.Id}}", last).stdout.strip()
    if previous and previous != current:
        podman("rmi", previous, check=False)  # not forced: an image still in use stays


@dataclass
class Container(LocalEndpoint):
    name: str
    port: int

    def wait_ready(self, timeout_s: float = 60) -> None:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                if httpx.get(f"{self.origin}/readyz", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            state = podman("inspect", "--format", "{{.State.Status}}", self.name).stdout.strip()
            assert state == "running", f"container {state}:\n" + podman("logs", self.name, check=False).stderr
            assert time.monotonic() < deadline, "the container did not get ready"
            time.sleep(0.2)


@pytest.fixture
def container(image: str) -> Iterator[Container]:
    name = f"tusedge-e2e-{secrets.token_hex(4)}"
    port = free_port()
    podman("volume", "create", name)
    try:
        podman("run", "--detach", "--name", name, "--read-only", *ULIMITS, "--publish", f"127.0.0.1:{port}:1080",
               "--volume", f"{name}:/data", "--env", "TUSEDGE_COMMIT_INTERVAL_BYTES=1MiB", image)  # fmt: skip
        running = Container(name, port)
        running.wait_ready()
        yield running
    finally:
        podman("rm", "--force", "--time", "0", name, check=False)
        podman("volume", "rm", "--force", name, check=False)


def test_the_container_runs_unprivileged_on_a_read_only_root(container: Container, image: str) -> None:
    assert podman("exec", container.name, "id", "-u").stdout.strip() == "10001"
    inspect = podman("inspect", "--format", "{{.HostConfig.ReadonlyRootfs}} {{.Config.User}}", container.name)
    assert inspect.stdout.split() == ["true", "tusedge"]
    denied = podman("exec", container.name, "touch", "/opt/tusedge/x", check=False)
    assert denied.returncode != 0 and "Read-only file system" in denied.stderr
    assert podman("exec", container.name, "touch", "/data/x").returncode == 0  # the volume is its own
    assert podman("exec", container.name, "python3", "-c", "import asyncpg").returncode == 0  # [postgres] extra
    healthcheck = podman("image", "inspect", "--format", "{{json .Config.Healthcheck.Test}}", image).stdout
    assert "/healthz" in healthcheck
    assert podman("healthcheck", "run", container.name, check=False).returncode == 0


def test_a_parallel_upload_from_the_host_is_served_whole_with_metrics_and_the_page(
    container: Container, tmp_path: Path
) -> None:
    source = tmp_path / "file.bin"
    digest = random_file(source, 24 * MIB)
    done = subprocess.run([sys.executable, "-m", "tusedge", "upload", str(source), container.url, "--parallel", "4",
                           "--no-resume"], cwd=ROOT, capture_output=True, text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert served_sha256(done.stdout.strip()) == digest

    metrics = httpx.get(f"{container.origin}/metrics").text
    assert 'tusedge_uploads_created_total{kind="partial"} 4.0' in metrics
    assert 'tusedge_uploads_created_total{kind="final"} 1.0' in metrics
    assert "tusedge_uploads_completed_total" in metrics
    page = httpx.get(f"{container.origin}/")
    assert page.status_code == 200 and "/ui/vendor/tus.min.js" in page.text
    vendored = (ROOT / "tusedge" / "server" / "static" / "vendor" / "tus.min.js").read_bytes()
    assert httpx.get(f"{container.origin}/ui/vendor/tus.min.js").content == vendored
    logs = podman("logs", container.name).stdout
    assert '"method":"PATCH"' in logs and '"status":204' in logs  # the access log, on the container's stdout


def _offsets(store: Path, source: Path, endpoint: str) -> list[int]:
    stored = ResumeStore(store).get(fingerprint(source), endpoint)
    if stored is None:
        return []
    return [int(httpx.head(url, headers=TUS, timeout=10).headers["Upload-Offset"]) for url in stored.parts]


def test_an_upload_resumes_after_the_container_is_killed(container: Container, tmp_path: Path) -> None:
    source, store = tmp_path / "file.bin", tmp_path / "store.db"
    size = 32 * MIB
    digest = random_file(source, size)
    args = [sys.executable, "-m", "tusedge", "upload", str(source), container.url, "--parallel", "2",
            "--chunk-size", "2MiB", "--store", str(store)]  # fmt: skip
    client = subprocess.Popen([*args, "--limit-rate", "8MiB"], cwd=ROOT, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while sum(_offsets(store, source, container.url)) < 6 * MIB:
            assert client.poll() is None, client.communicate()
            assert time.monotonic() < deadline, "no progress"
            time.sleep(0.05)
        podman("kill", container.name)  # SIGKILL: no drain, no goodbye
    finally:
        client.kill()
        client.communicate(timeout=30)
    podman("start", container.name)
    container.wait_ready()
    had = sum(_offsets(store, source, container.url))
    assert 6 * MIB <= had < size  # what was acknowledged before the kill is still there

    again = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    assert f"({had} bytes) already on the server" in again.stderr
    assert served_sha256(again.stdout.strip()) == digest


def test_stopping_the_container_drains_and_exits_cleanly(container: Container) -> None:
    assert httpx.post(container.url, headers={**TUS, "Upload-Length": "1"}).status_code == 201
    podman("stop", "--time", "40", container.name)
    state = podman("inspect", "--format", "{{.State.ExitCode}}", container.name).stdout.strip()
    assert state == "0"
    assert "drained; stopping" in podman("logs", container.name).stderr
