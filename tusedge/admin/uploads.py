"""``tusedge uploads``: the uploads of a node, from its state database (SQLite in the data folder, or the
PostgreSQL the nodes share), with the server's own settings (the same ``TUSEDGE_*`` variables and flags).

- ``list [--state S] [--older-than AGE]``: uploads, least recently changed first;
- ``show ID``: one upload, with its file on disk and whether a request is writing it right now;
- ``rm ID``: removes it through the service's own termination (what DELETE does: the upload's lock, a
  tombstone that answers 410, its file and lock file gone, the ``post-terminate`` hook event in the outbox);
- ``gc``: one round of the server's reaper, now (expired uploads removed with ``post-expire``, finishing
  jobs left by a crash run again, week-old tombstones forgotten), and what it did.

Safe while the server runs: every change goes through the same locks and transactions as the server's
own requests (an upload being written makes ``rm`` wait up to ``lock_timeout_s``, and asks a quiet writer
to give way, as a new PATCH would). Hook events are written to the outbox in the state database; the
running server (or the next one to start) delivers them. ``--json`` gives machine-readable output.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from tusedge.config import Settings
from tusedge.errors import TusError, UploadLocked
from tusedge.protocol.metadata import parse_metadata
from tusedge.protocol.upload import Status, UploadInfo
from tusedge.server.app import build_service, running
from tusedge.server.lifecycle import TOMBSTONE_DAYS
from tusedge.server.reaper import reap
from tusedge.server.service import TusService
from tusedge.storage.base import ContentServer

LIVE = (Status.ACTIVE, Status.FINISHING, Status.COMPLETE, Status.FAILED)
STATES = {"live": LIVE, "all": tuple(Status), **{status.value: (status,) for status in Status}}
_AGE = re.compile(r"(\d+(?:\.\d+)?)\s*([smhdw]?)")
_UNIT_S = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


class AdminError(Exception):
    """A command that cannot be done, with a one-line reason (exit status 1)."""


def parse_age(text: str) -> timedelta:
    """``90``, ``90s``, ``15m``, ``2h``, ``3d``, ``1w``."""
    match = _AGE.fullmatch(text.strip().lower())
    if match is None:
        raise ValueError(f"not an age: {text!r} (e.g. 90s, 15m, 2h, 3d, 1w)")
    return timedelta(seconds=float(match.group(1)) * _UNIT_S[match.group(2)])


def parse_states(text: str) -> tuple[Status, ...]:
    chosen: list[Status] = []
    for name in (part.strip().lower() for part in text.split(",") if part.strip()):
        if name not in STATES:
            raise ValueError(f"unknown state {name!r}: one of {', '.join(STATES)}")
        chosen += [status for status in STATES[name] if status not in chosen]
    return tuple(chosen)


def _stamp(value: datetime | None) -> str | None:
    return None if value is None else value.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def describe(info: UploadInfo, updated_at: datetime | None, base_path: str) -> dict[str, Any]:
    metadata = {key: value.decode("utf-8", "replace") for key, value in parse_metadata(info.metadata).items()}
    return {
        "id": info.id,
        "path": base_path + info.id,
        "status": info.status.value,
        "kind": info.concat.value if info.concat is not None else "single",
        "offset": info.offset,
        "length": info.length,
        "created_at": _stamp(info.created_at),
        "updated_at": _stamp(updated_at),
        "expires_at": _stamp(info.expires_at),
        "metadata": metadata,
        "parts": list(info.parts),
        "error": info.error,
        "failure": info.failure.value if info.failure else None,
    }


@dataclass
class Node:
    """The service of one node's settings, set up for one command."""

    settings: Settings
    service: TusService

    @property
    def now(self) -> datetime:
        return self.service.components.clock()

    async def list(self, statuses: Sequence[Status], older_than: timedelta | None, limit: int) -> list[dict[str, Any]]:
        before = None if older_than is None else self.now - older_than
        rows = await self.service.components.repository.listing(statuses, before, limit)
        return [describe(info, updated, self.settings.base_path) for info, updated in rows]

    async def show(self, upload_id: str) -> dict[str, Any]:
        repo = self.service.components.repository
        info = await repo.get(upload_id)
        if info is None:
            raise AdminError(f"no upload {upload_id} in this node's state database")
        shown = describe(info, await repo.updated_at(upload_id), self.settings.base_path)
        store = self.service.components.store
        shown["file"] = None
        if isinstance(store, ContentServer):  # a store of files: where this one lies and what it takes
            path = store.path(upload_id)
            try:
                st = os.stat(path)
                shown["file"] = {"path": str(path), "size": st.st_size, "allocated": st.st_blocks * 512}
            except (OSError, ValueError):
                pass
        shown["in_use"] = await self._in_use(info)
        return shown

    async def _in_use(self, info: UploadInfo) -> bool | None:
        """Whether a request (or a finishing job) holds the upload's lock right now; None for a tombstone."""
        if info.status.gone:
            return None
        try:
            lock = await self.service.components.locker.acquire(info.id, 0, ask_release=False)
        except UploadLocked:
            return True
        await lock.release()
        return False

    async def remove(self, upload_id: str) -> dict[str, Any]:
        try:
            await self.service.terminate(upload_id)
        except UploadLocked:
            raise AdminError(f"upload {upload_id} is being written right now and its client is not quiet; "
                             "try again, or stop that client") from None  # fmt: skip
        except TusError as exc:
            raise AdminError(f"upload {upload_id}: {exc.message}") from None
        return {"removed": upload_id}

    async def collect(self) -> dict[str, Any]:
        """One reaper round, as the server runs it every reaper_interval_s, and what it changed."""
        repo, now = self.service.components.repository, self.now
        due = await repo.expired(now)
        forgettable = await repo.tombstones(now - timedelta(days=TOMBSTONE_DAYS))
        await reap(self.service.components, self.service.finisher)
        finishing = []
        for info in await repo.with_status(Status.FINISHING):  # the reap started them: wait as a request would
            await self.service.finisher.finish(info.id)
            after = await repo.get(info.id)
            finishing.append({"id": info.id, "status": after.status.value if after else "purged"})
        expired = [upload_id for upload_id, info in (await repo.get_many(due)).items() if info.status is Status.EXPIRED]
        forgotten = len(forgettable) - len(await repo.get_many(forgettable))
        return {"expired": sorted(expired), "finishing": finishing, "tombstones_forgotten": forgotten}


def _human_size(n: int | None) -> str:
    if n is None:
        return "?"
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return str(n)


def render_list(rows: list[dict[str, Any]]) -> str:
    lines = [f"{'ID':32}  {'STATUS':10} {'KIND':8} {'RECEIVED':>24}  {'CHANGED':20}  NAME"]
    for row in rows:
        done = f"{_human_size(row['offset'])} / {_human_size(row['length'])}"
        name = row["metadata"].get("filename", "")
        lines.append(f"{row['id']:32}  {row['status']:10} {row['kind']:8} {done:>24}  {row['updated_at'] or '':20}  "
                     f"{name}")  # fmt: skip
    lines.append(f"{len(rows)} upload(s)")
    return "\n".join(lines) + "\n"


def render(value: Any, as_json: bool) -> str:
    if as_json:
        return json.dumps(value, indent=2, ensure_ascii=False) + "\n"
    if isinstance(value, list):
        return render_list(value)
    lines = []
    for key, item in value.items():
        shown = json.dumps(item, ensure_ascii=False) if isinstance(item, dict | list) else item
        if isinstance(item, bool):
            shown = "yes" if item else "no"
        lines.append(f"{key + ':':22}{'-' if shown is None else shown}")
    return "\n".join(lines) + "\n"


async def run_command(settings: Settings, command: str, args: dict[str, Any]) -> Any:
    """Open the node's state (never creating one: a mistyped --data-dir must not look empty) and run."""
    if not settings.database_url and not (settings.data_dir / "tusedge.db").is_file():
        raise AdminError(f"no tusedge state in {settings.data_dir} (set --data-dir or --database-url as the "
                         "server has them)")  # fmt: skip
    owner = settings.data_dir.stat().st_uid if settings.data_dir.is_dir() else os.geteuid()
    if owner != os.geteuid():
        # Lock files and SQLite's -wal/-shm files made by another user would lock the server out of them.
        raise AdminError(f"run this as the owner of {settings.data_dir} (uid {owner}), e.g. sudo -u tusedge: "
                         "files it creates must stay the server's")  # fmt: skip
    async with running(build_service(settings)) as service:
        node = Node(settings, service)
        if command == "list":
            return await node.list(args["states"], args["older_than"], args["limit"])
        if command == "show":
            return await node.show(args["id"])
        if command == "rm":
            return await node.remove(args["id"])
        return await node.collect()
