"""Finishing an upload once every byte is in: merge a final upload's parts (concatenation) and check a
declared whole-file digest. Both can take minutes for 20 GB, so they run as background jobs that do not
belong to any request: a client that hangs up does not cancel a merge. The request that triggered a job
waits for it up to ``finish_wait_s`` and otherwise answers while it goes on (HEAD shows the state).

State machine: ACTIVE -> FINISHING -> COMPLETE | FAILED. A job holds the upload's lock; it restarts from
scratch after a crash (parts are only removed after the final is COMPLETE), on startup and in every
reaper round, so a half-merged file is never marked complete. The final's COMPLETE and its parts'
TERMINATED are one transaction; the parts' files go right after it (or, after a crash in between, with
the tombstone purge).

Merging while parts finish: a final declared before its parts are done (concatenation-unfinished) gets each
part joined in at its place as soon as that part is complete (``FileStore.join_part``: the bytes synced,
then the part recorded beside the final), in a background pass per final, so the merge after the last
part only joins what has no record (usually that last part) and the final is ready moments after its last
byte. The record is what makes it crash-safe: a part without one is joined again by the merge.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import replace

from tusedge.checksum import ALGORITHMS
from tusedge.errors import TusError, UploadLocked
from tusedge.protocol.concat import final_length
from tusedge.protocol.headers import declared_digest
from tusedge.protocol.upload import ConcatKind, Failure, Status, UploadInfo
from tusedge.server import lifecycle
from tusedge.server.components import Components
from tusedge.storage.base import as_concater
from tusedge.storage.fileops import joined_prefix

# Parts still uploading: their committed bytes are joined into a waiting final once this many more are in
# than were joined, in whole units (so a file system with reflinks shares their blocks). The merge after
# the last byte then has at most about a step (plus the last PATCH) left of each part — on ext4 it would
# otherwise copy the whole file then.
PREFIX_STEP = 32 * 1024 * 1024
PREFIX_UNIT = 1024 * 1024

log = logging.getLogger("tusedge")


class Finisher:
    def __init__(self, components: Components) -> None:
        self.components = c = components
        self.settings, self.store, self.repo, self.locker = c.settings, c.store, c.repository, c.locker
        self.clock, self.metrics = c.clock, c.metrics
        self._jobs: dict[str, asyncio.Task[None]] = {}
        self._early: dict[str, asyncio.Task[None]] = {}  # per final: the pass joining its finished parts
        self._again: set[str] = set()  # finals whose parts changed while their pass ran

    def start(self, upload_id: str) -> asyncio.Task[None]:
        """Start the job for ``upload_id`` (or return the one already running in this process)."""
        task = self._jobs.get(upload_id)
        if task is None or task.done():
            task = asyncio.get_running_loop().create_task(self._run(upload_id))
            self._jobs[upload_id] = task
            task.add_done_callback(lambda done: self._forget(upload_id, done))
        return task

    def _forget(self, upload_id: str, task: asyncio.Task[None]) -> None:
        if self._jobs.get(upload_id) is task:
            del self._jobs[upload_id]

    async def finish(self, upload_id: str) -> None:
        """Start the job and wait for it at most ``finish_wait_s``; it goes on in the background after."""
        task = self.start(upload_id)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(task), self.settings.finish_wait_s)

    async def resume_pending(self) -> None:
        """Restart jobs left FINISHING by a crash or a transient failure (e.g. a full disk)."""
        for info in await self.repo.with_status(Status.FINISHING):
            if info.id not in self._jobs:
                self.start(info.id)

    async def part_completed(self, part_id: str) -> None:
        """concatenation-unfinished: a partial upload completed (or committed more bytes); start every final
        it was the last part of, and the early joins of the others."""
        for final in await self.repo.finals_waiting_for(part_id):
            await self.parts_changed(final.id)

    async def part_gone(self, part_id: str) -> None:
        """concatenation-unfinished: a partial upload was terminated or expired before a final naming it was
        complete. That final can never be complete: it fails at once (part-gone), so HEAD says so and GET
        answers 422, instead of it waiting, unfinished, until it expires."""
        for final in await self.repo.finals_waiting_for(part_id):
            reason = "a partial upload of this final upload is gone"
            if await self.repo.claim(
                final.id, self.clock(), Status.ACTIVE, status=Status.FAILED, error=reason, failure=Failure.PART_GONE
            ):
                log.warning("upload %s failed: %s (%s)", final.id, reason, part_id)
                self.metrics.uploads_failed.inc()

    async def parts_changed(self, final_id: str) -> None:
        """Start the merge of a waiting final upload if all its parts are now complete."""
        final = await self.repo.get(final_id)
        if final is None or final.status is not Status.ACTIVE:
            return
        found = await self.repo.get_many(list(final.parts))
        parts = [found.get(part_id) for part_id in final.parts]
        if not all(part is not None and part.complete for part in parts):
            self._join_early(final_id)
            return
        length = final_length(part for part in parts if part is not None)
        if await self.repo.claim(
            final_id, self.clock(), Status.ACTIVE, status=Status.FINISHING, length=length, expires_at=None
        ):
            self.start(final_id)

    def _join_early(self, final_id: str) -> None:
        """Start a pass joining the final's finished parts (or ask the running one for another round)."""
        self._again.add(final_id)
        task = self._early.get(final_id)
        if task is None or task.done():
            task = asyncio.get_running_loop().create_task(self._early_joins(final_id))
            self._early[final_id] = task
            task.add_done_callback(
                lambda done: self._early.pop(final_id, None) if self._early.get(final_id) is done else None
            )

    async def _early_joins(self, final_id: str) -> None:
        while final_id in self._again:
            self._again.discard(final_id)
            try:
                await self._join_finished_parts(final_id)
            except (TusError, OSError) as exc:  # nothing lost: the merge joins every part without a record
                log.warning("upload %s: joining its finished parts early failed: %s", final_id, exc)
                self._again.discard(final_id)
            except Exception:  # a bug, in a task nobody awaits: logged here or never (the merge still joins all)
                log.exception("upload %s: joining its finished parts early failed unexpectedly", final_id)
                self._again.discard(final_id)

    async def _join_finished_parts(self, final_id: str) -> None:
        """Join every complete part of a waiting final whose place is known (the lengths of the parts
        before it are) and that has no record yet, and the committed bytes of parts still uploading once
        ``PREFIX_STEP`` more are in than were joined (whole ``PREFIX_UNIT``s, so blocks can be shared).
        Committed bytes never change (a PATCH only writes past the offset), so they can be joined before
        their part is done. No lock: the merge may run beside it (fileops writes the same bytes either
        way; see FileStore.join_part)."""
        final = await self.repo.get(final_id)
        if final is None or final.status is not Status.ACTIVE:
            return
        found = await self.repo.get_many(list(final.parts))
        recorded = await as_concater(self.store).joined(final_id)
        offset = 0
        for part_id in final.parts:
            part = found.get(part_id)
            if part is None or part.length is None:
                return  # the places of this part and the ones after it are not known yet
            have = joined_prefix(recorded, part_id, offset)
            complete = part.status is Status.COMPLETE
            target = part.length if complete else part.offset - part.offset % PREFIX_UNIT
            if (complete and have != part.length) or (
                part.status is Status.ACTIVE and target - (have or 0) >= PREFIX_STEP
            ):
                current = await self.repo.get(final_id)
                if current is None or current.status is not Status.ACTIVE:
                    return  # its merge has begun (or it is gone): the merge joins the rest
                started = time.monotonic()
                joined = await as_concater(self.store).join_part(final_id, part_id, offset, target, have or 0)
                if joined is None:
                    return
                after = await self.repo.get(final_id)
                if after is None or after.status not in (Status.ACTIVE, Status.FINISHING):
                    # Merged (or removed) meanwhile: its merge has removed the record already, so the line
                    # this join wrote would be left behind. A merge still running (FINISHING) reads the
                    # record and removes it itself: this process's merge waits for this pass first.
                    await as_concater(self.store).forget_joined(final_id)
                    return
                self.metrics.merged_bytes.labels("shared").inc(joined.shared)
                self.metrics.merged_bytes.labels("copied").inc(joined.copied)
                if complete:
                    self.metrics.parts_joined_early.inc()
                log.info(
                    "upload %s: joined part %s early%s, %d bytes at %d in %.3f s (%d shared, %d copied)",
                    final_id,
                    part_id,
                    "" if complete else " (still uploading)",
                    target - (have or 0),
                    offset + (have or 0),
                    time.monotonic() - started,
                    joined.shared,
                    joined.copied,
                )
            offset += part.length

    async def close(self) -> None:
        """Cancel the jobs still running (they start again from scratch later, here or on another node)
        and wait for each to end; anything but the cancellation that one ends in is logged."""
        running = [*self._early.items(), *self._jobs.items()]
        for upload_id, task in running:
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass
            except Exception:
                log.exception("finishing upload %s: cancelled at shutdown, it failed while stopping", upload_id)

    async def _run(self, upload_id: str) -> None:
        try:
            lock = await self.locker.acquire(upload_id, self.settings.lock_timeout_s, ask_release=False)
        except UploadLocked:
            return  # another process is finishing it
        try:
            info = await self.repo.get(upload_id)
            if info is None or info.status is not Status.FINISHING:
                return
            await self._finish(info)
        except (TusError, OSError) as exc:
            # Transient (disk full, a part's file busy): stay FINISHING, retried by the next reaper round.
            log.error("finishing upload %s failed, will retry: %s", upload_id, exc)
        except Exception:
            # A bug: nobody awaits this task, so it is logged here (with its traceback) or never. The upload
            # stays FINISHING and the next reaper round tries again.
            log.exception("finishing upload %s failed unexpectedly, will retry", upload_id)
        finally:
            await lock.release()

    async def _finish(self, info: UploadInfo) -> None:
        length = info.length
        parts: list[UploadInfo] = []
        if info.is_final:
            found = await self.repo.get_many(list(info.parts))
            parts = [found[part_id] for part_id in info.parts if part_id in found]
            if len(parts) != len(info.parts) or any(p.status is not Status.COMPLETE for p in parts):
                await self._fail(info, Failure.PART_GONE, "a partial upload of this final upload is gone")
                return
            length = final_length(parts)
            assert length is not None
            early = self._early.get(info.id)
            if early is not None:  # this process is joining a part early: let it, rather than join it twice
                self._again.discard(info.id)
                with contextlib.suppress(Exception):  # (it logs its own failures)
                    await asyncio.shield(early)
            started = time.monotonic()
            joined = await as_concater(self.store).merge(info.id, [(p.id, p.length or 0) for p in parts])
            seconds = time.monotonic() - started
            self.metrics.merge_seconds.observe(seconds)
            self.metrics.merged_bytes.labels("shared").inc(joined.shared)
            self.metrics.merged_bytes.labels("copied").inc(joined.copied)
            log.info(
                "upload %s: merged %d parts, %d bytes in %.3f s (%d shared, %d copied), %d joined earlier",
                info.id,
                len(parts),
                length,
                seconds,
                joined.shared,
                joined.copied,
                joined.earlier,
            )
        assert length is not None
        declared = declared_digest(info.metadata)
        if declared is not None:
            algorithm = ALGORITHMS[declared.algorithm]
            digest = None
            if parts:  # through the parts' files, in the page cache (the final's shared blocks are not)
                digest = await as_concater(self.store).digest_merged(
                    info.id, [(p.id, p.length or 0) for p in parts], algorithm
                )
            if digest is None:
                digest = await self.store.digest(info.id, algorithm, length)
            if digest != declared.digest:
                reason = f"the upload's {declared.algorithm} digest does not match the declared one"
                await self._fail(info, Failure.DIGEST_MISMATCH, reason)
                return
        now = self.clock()
        retire = [] if self.settings.keep_partials else [part.id for part in parts]
        if not await self.repo.claim_and_retire(
            info.id,
            now,
            Status.FINISHING,
            retire,
            status=Status.COMPLETE,
            offset=length,
            length=length,
            expires_at=None,
        ):
            return
        log.info("upload %s complete (%d bytes)", info.id, length)
        await lifecycle.completed(self.components, replace(info, offset=length, length=length, status=Status.COMPLETE))
        if info.concat is ConcatKind.PARTIAL:
            await self.part_completed(info.id)
        if retire:
            started = time.monotonic()
            for part_id in retire:
                await self.store.remove(part_id)
                await self.locker.forget(part_id)
            log.info(
                "upload %s: removed %d partial uploads in %.2f s", info.id, len(retire), time.monotonic() - started
            )

    async def _fail(self, info: UploadInfo, failure: Failure, reason: str) -> None:
        log.warning("upload %s failed: %s", info.id, reason)
        if await self.repo.claim(
            info.id, self.clock(), Status.FINISHING, status=Status.FAILED, error=reason, failure=failure
        ):
            self.metrics.uploads_failed.inc()
