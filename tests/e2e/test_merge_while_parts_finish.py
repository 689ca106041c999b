"""Merging while parts finish: a final upload declared before its parts are done (concatenation-unfinished)
gets each part joined in at its place as soon as that part completes, in any order, with a synced record
beside the final; the merge after the last part joins only what has no record, so the final is ready
moments after its last byte. Crash-safe: after a ``kill -9`` the records that made it to disk are kept, a
torn record or a part joined without one is joined again, and the final is byte-exact. Our client declares
the final early where the server offers concatenation-unfinished, and resumes such an upload."""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from loopfs import REFLINKS, loop_filesystem
from observe import metric, wait_for, wait_for_metric
from rawhttp import TUS, patch
from server_process import ROOT, ServerFactory, ServerProcess
from upload_files import random_file, served_sha256

from tusedge.client.fingerprint import fingerprint
from tusedge.client.resume import ResumeStore, StoredUpload

MIB = 1024 * 1024
EARLY = "tusedge_parts_joined_early_total"
MERGED = re.compile(r"merged (\d+) parts, (\d+) bytes in [\d.]+ s \((\d+) shared, (\d+) copied\), (\d+) joined earlier")
SIZES = [4 * MIB, 4 * MIB, 4 * MIB + 12_345]  # whole blocks but the last part: shareable on XFS


@pytest.fixture(params=["ext4", "xfs"])
def data_fs(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, Path]]:
    with loop_filesystem(request.param, tmp_path, size=512 * MIB) as mount:
        yield request.param, mount


class Concat:
    """Partial uploads (three of ``SIZES`` unless told) and their final, declared at once (the parts still
    empty)."""

    def __init__(self, server: ServerProcess, sizes: list[int] = SIZES) -> None:
        self.server = server
        self.sizes = sizes
        self.data = [os.urandom(size) for size in sizes]
        self.parts = []
        for size in sizes:
            made = httpx.post(server.url, headers={**TUS, "Upload-Length": str(size), "Upload-Concat": "partial"})
            assert made.status_code == 201
            self.parts.append(made.headers["Location"])
        final = httpx.post(server.url, headers={**TUS, "Upload-Concat": "final;" + " ".join(self.parts)})
        assert final.status_code == 201
        self.final = final.headers["Location"]
        self.final_id = self.final.rsplit("/", 1)[1]

    def send(self, index: int) -> None:
        assert patch(self.parts[index], 0, self.data[index]).status_code == 204

    @property
    def record(self) -> Path:
        return self.server.data_dir / "uploads" / f"{self.final_id}.joined"

    def recorded(self) -> list[list[str]]:
        return [line.split() for line in self.record.read_text().splitlines()] if self.record.exists() else []

    def wait_complete(self) -> None:
        total = sum(self.sizes)
        wait_for(lambda: httpx.head(self.final, headers=TUS).headers.get("Upload-Offset") == str(total),
                 "the final complete")  # fmt: skip

    def merged(self) -> tuple[int, int, int, int, int]:
        (found,) = [m for m in map(MERGED.search, self.server.log) if m]
        return tuple(int(g) for g in found.groups())  # type: ignore[return-value]

    def exact(self) -> bool:
        return served_sha256(self.final) == hashlib.sha256(b"".join(self.data)).hexdigest()


def test_finished_parts_are_joined_as_they_complete_and_the_merge_joins_only_the_last(
    server_factory: ServerFactory, data_fs: tuple[str, Path]
) -> None:
    kind, mount = data_fs
    server = server_factory(data_dir=mount / "data")
    up = Concat(server)
    up.send(2)  # out of order: the last part first
    wait_for_metric(server.origin, EARLY, 1)
    up.send(0)
    wait_for_metric(server.origin, EARLY, 2)
    offsets = [0, SIZES[0], SIZES[0] + SIZES[1]]
    ids = [url.rsplit("/", 1)[1] for url in up.parts]
    assert sorted(up.recorded()) == sorted([[ids[i], str(offsets[i]), str(SIZES[i])] for i in (0, 2)])
    early_shared = metric(server.origin, "tusedge_merged_bytes_total", how="shared")
    assert early_shared == (SIZES[0] + SIZES[2] if REFLINKS[kind] else 0)  # whole parts shared, out of order too
    assert "Upload-Offset" not in httpx.head(up.final, headers=TUS).headers  # still waiting for part 1

    up.send(1)
    up.wait_complete()
    parts, length, shared, copied, earlier = up.merged()
    assert (parts, length, earlier) == (3, sum(SIZES), SIZES[0] + SIZES[2])
    assert shared + copied == SIZES[1]  # the merge joined only the part that had just completed
    assert up.exact()
    assert not up.record.exists()


def test_committed_bytes_of_a_part_still_uploading_are_joined_and_the_merge_joins_only_the_rest(
    server_factory: ServerFactory, data_fs: tuple[str, Path]
) -> None:
    """A part's committed bytes never change, so a final declared early takes them in while the part is still
    uploading — in whole 1 MiB units once 32 MiB more are in (tusedge.server.finishing.PREFIX_STEP), shared
    on XFS — and after the last byte the merge has only the rest left (ext4 would copy the whole file then)."""
    kind, mount = data_fs
    server = server_factory(data_dir=mount / "data")
    up = Concat(server, [48 * MIB, 4 * MIB + 12_345])
    sizes, data, parts, final_id, record = up.sizes, up.data, up.parts, up.final_id, up.record
    part0 = parts[0].rsplit("/", 1)[1]

    first = 40 * MIB + 5  # committed part-way, not on a unit
    assert patch(parts[0], 0, data[0][:first]).status_code == 204
    wait_for(
        lambda: record.exists() and f"{part0} 0 {40 * MIB}\n" in record.read_text(), "part 0's first 40 MiB joined"
    )
    with open(server.data_dir / "uploads" / final_id, "rb") as fh:
        assert fh.read(40 * MIB) == data[0][: 40 * MIB]
    assert metric(server.origin, EARLY) == 0  # no part is complete yet
    shared = metric(server.origin, "tusedge_merged_bytes_total", how="shared")
    assert shared == (40 * MIB if REFLINKS[kind] else 0)

    assert patch(parts[0], first, data[0][first:]).status_code == 204
    assert patch(parts[1], 0, data[1]).status_code == 204
    up.wait_complete()
    _, length, shared_now, copied_now, earlier = up.merged()
    assert length == sum(sizes) and earlier >= 40 * MIB
    assert earlier + shared_now + copied_now == sum(sizes)
    assert up.exact()
    assert not record.exists()


def test_after_kill_9_the_records_on_disk_count_and_a_torn_or_missing_one_is_joined_again(
    server_factory: ServerFactory, tmp_path: Path
) -> None:
    server = server_factory()
    up = Concat(server)
    up.send(0)
    up.send(2)
    wait_for_metric(server.origin, EARLY, 2)
    server.kill()  # kill -9
    # What a crash at the worst moments leaves: part 2's record torn (the crash came while it was written)
    # and its range in the final never written (the data not yet synced), part 0's record whole.
    ids = [url.rsplit("/", 1)[1] for url in up.parts]
    lines = {line.split()[0]: line for line in up.record.read_text().splitlines()}
    assert set(lines) == {ids[0], ids[2]}
    up.record.write_text(lines[ids[0]] + "\n" + lines[ids[2]][:-5])
    final_file = server.data_dir / "uploads" / up.final_id
    with open(final_file, "r+b") as fh:
        fh.seek(SIZES[0] + SIZES[1])
        fh.write(b"\xff" * SIZES[2])
    server.start()

    up.send(1)
    up.wait_complete()
    parts, length, shared, copied, earlier = up.merged()
    assert (parts, length, earlier) == (3, sum(SIZES), SIZES[0])  # only part 0's record was whole
    assert shared + copied == SIZES[1] + SIZES[2]
    assert up.exact()


def test_other_clients_finals_declared_after_their_parts_are_unchanged(server_factory: ServerFactory) -> None:
    """A final declared once every part is complete (tus-js-client, tuspy): nothing is joined early, the
    merge joins every part, as before."""
    server = server_factory()
    data = [os.urandom(size) for size in SIZES]
    parts = []
    for chunk in data:
        made = httpx.post(server.url, headers={**TUS, "Upload-Length": str(len(chunk)), "Upload-Concat": "partial"})
        assert patch(made.headers["Location"], 0, chunk).status_code == 204
        parts.append(made.headers["Location"])
    final = httpx.post(server.url, headers={**TUS, "Upload-Concat": "final;" + " ".join(parts)})
    assert final.status_code == 201
    assert served_sha256(final.headers["Location"]) == hashlib.sha256(b"".join(data)).hexdigest()
    assert metric(server.origin, EARLY) == 0
    (found,) = [m for m in map(MERGED.search, server.log) if m]
    assert int(found[5]) == 0 and int(found[3]) + int(found[4]) == sum(SIZES)


def access_log(server: ServerProcess) -> list[dict[str, object]]:
    return [json.loads(line) for line in server.log if line.startswith("{")]


def test_our_client_declares_the_final_while_its_parts_are_still_going(
    server_factory: ServerFactory, tmp_path: Path
) -> None:
    server = server_factory()
    source = tmp_path / "file.bin"
    digest = random_file(source, 12 * MIB + 5)
    done = subprocess.run([sys.executable, "-m", "tusedge", "upload", str(source), server.url, "--parallel", "3",
                           "--limit-rate", "6MiB", "--chunk-size", "1MiB", "--no-resume"],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr
    final = done.stdout.strip()
    assert served_sha256(final) == digest
    lines = access_log(server)
    final_id = final.rsplit("/", 1)[1]
    (declared,) = [i for i, line in enumerate(lines) if line["method"] == "POST" and line["upload_id"] == final_id]
    patches = [i for i, line in enumerate(lines) if line["method"] == "PATCH"]
    assert len(patches) >= 12 and declared < patches[-1] - 3, "the final was declared after its parts"


def offsets(stored: StoredUpload) -> int:
    return sum(int(httpx.head(url, headers=TUS).headers["Upload-Offset"]) for url in stored.parts)


def test_our_client_resumes_an_upload_whose_final_it_declared_early(
    server_factory: ServerFactory, tmp_path: Path
) -> None:
    server = server_factory()
    source, store = tmp_path / "file.bin", tmp_path / "store.db"
    size = 16 * MIB
    digest = random_file(source, size)
    args = [sys.executable, "-m", "tusedge", "upload", str(source), server.url, "--parallel", "2",
            "--chunk-size", "1MiB", "--store", str(store)]  # fmt: skip
    proc = subprocess.Popen([*args, "--limit-rate", "4MiB"], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:

        def with_final() -> StoredUpload | None:
            found = ResumeStore(store).get(fingerprint(source), server.url)
            return found if found is not None and found.final is not None else None

        stored = wait_for(with_final, "the final recorded in the resume store")
        wait_for(lambda: offsets(stored) >= 2 * MIB, "2 MiB on the server")
    finally:
        proc.kill()
        proc.communicate(timeout=30)
    had = offsets(stored)
    assert had < size
    again = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stderr
    assert again.stdout.strip() == stored.final  # the same final, not a second one
    assert f"({had} bytes) already on the server" in again.stderr
    assert served_sha256(stored.final) == digest


def test_with_several_workers_any_of_them_joins_early_and_the_merge_skips_it(server_factory: ServerFactory) -> None:
    """--workers 2: the parts' PATCHes, their early joins and the merge land on either process; no lock is
    shared between an early join and the merge, and the final is exact."""
    server = server_factory("--workers", "2")
    up = Concat(server)
    up.send(1)
    up.send(2)
    wait_for_metric(server.origin, EARLY, 2)  # summed over the workers
    up.send(0)
    up.wait_complete()
    parts, length, shared, copied, earlier = up.merged()
    assert (parts, length, earlier) == (3, sum(SIZES), SIZES[1] + SIZES[2])
    assert shared + copied == SIZES[0]
    assert up.exact()


def test_a_kill_9_right_as_a_part_completes_still_gives_a_byte_exact_final(server_factory: ServerFactory) -> None:
    """The server is killed the moment a part's last PATCH is answered, i.e. while its early join runs (or
    just before or after it): whatever made it to disk, the final is exact once the other parts are in."""
    server = server_factory()
    up = Concat(server, [32 * MIB, 32 * MIB, 32 * MIB + 7])
    sizes, data, parts = up.sizes, up.data, up.parts
    up.send(0)
    server.kill()  # kill -9, with the early join of part 0 just started
    server.start()
    for url, chunk in zip(parts[1:], data[1:], strict=True):
        assert patch(url, 0, chunk).status_code == 204
    up.wait_complete()
    assert up.exact()
    _, _, shared, copied, earlier = up.merged()
    # Part 0 was recorded before the kill or joined again after it (with part 1, early, or by the merge).
    assert earlier in (0, sizes[0], sizes[0] + sizes[1])
    assert shared + copied + earlier == sum(sizes)
