"""Real file systems made for a run: a sparse image file, ``mkfs`` (ext4, XFS with its default ``reflink=1``,
btrfs), loop-mounted on a folder next to it, unmounted and removed afterwards. Needs root and the mkfs
tools (xfsprogs, btrfs-progs). Used by the benchmarks and, through tests/loopfs.py, by the tests."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

MKFS = {
    "ext4": ["mkfs.ext4", "-q", "-F"],
    "xfs": ["mkfs.xfs", "-q", "-f"],  # reflink=1 is the default of xfsprogs >= 5.1
    "btrfs": ["mkfs.btrfs", "-q", "-f"],
}
# Which of them share blocks between files (FICLONERANGE).
REFLINKS = {"ext4": False, "xfs": True, "btrfs": True}


def unavailable(kind: str) -> str | None:
    """Why a file system of ``kind`` cannot be made here, or None."""
    if os.geteuid() != 0:
        return "loop mounts need root"
    if shutil.which(MKFS[kind][0]) is None:
        return f"{MKFS[kind][0]} is not installed"
    return None


@contextlib.contextmanager
def loop_filesystem(kind: str, folder: Path, size: int = 1 << 30) -> Iterator[Path]:
    """Yield the mount point of a fresh ``kind`` file system of ``size`` bytes (a sparse image in
    ``folder``: only what is written takes space); unmount and delete it afterwards."""
    reason = unavailable(kind)
    if reason is not None:
        raise RuntimeError(f"cannot make {kind} here: {reason}")
    image, mount = folder / f"tusedge-parallel-{kind}.img", folder / f"tusedge-parallel-{kind}"
    with open(image, "wb") as fh:
        fh.truncate(size)
    try:
        subprocess.run([*MKFS[kind], str(image)], check=True, capture_output=True)
        mount.mkdir(exist_ok=True)
        device = attach(image)
        try:
            subprocess.run(["mount", device, str(mount)], check=True, capture_output=True)
            try:
                yield mount
            finally:
                done = subprocess.run(["umount", str(mount)], capture_output=True)
                if done.returncode != 0:  # still busy (a server that has not exited): detach when it lets go
                    subprocess.run(["umount", "-l", str(mount)], capture_output=True)
        finally:
            subprocess.run(["losetup", "-d", device], capture_output=True)  # a busy one goes when released
    finally:
        image.unlink(missing_ok=True)


def attach(image: Path) -> str:
    """A loop device for ``image``, with direct I/O where the disk under it allows: without it every block
    is cached twice (the image file's pages and the device's) and a synced write costs about twice as much
    as on the disk itself, which would misstate what the file system costs."""
    for extra in (["--direct-io=on"], []):
        done = subprocess.run(["losetup", *extra, "--find", "--show", str(image)], capture_output=True, text=True)
        if done.returncode == 0:
            return done.stdout.strip()
    raise RuntimeError(f"losetup {image}: {done.stderr.strip()}")


def used_bytes(mount: Path) -> int:
    """Bytes in use on the file system (what ``df`` shows as Used), after a sync so delayed allocations
    are counted."""
    os.sync()
    st = os.statvfs(mount)
    return (st.f_blocks - st.f_bfree) * st.f_frsize
