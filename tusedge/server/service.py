"""TusService: one async method per tus operation. The order is always lock -> state -> store -> commit.

Routes hand it parsed requests and the body stream; it returns :class:`UploadInfo` records (a
:class:`Download` for GET) or raises :class:`~tusedge.errors.TusError`. It never sees a header dict and
never builds a response. It fires every hook and counts every upload metric; the routes do neither.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path

from tusedge.checksum import new_hasher
from tusedge.errors import (
    ChecksumMismatch,
    ExceedsUploadLength,
    InvalidConcat,
    LengthRequired,
    ModifyFinalUpload,
    RequestTimeout,
    TusError,
    UploadFailed,
    UploadGone,
    UploadInterrupted,
    UploadNotFound,
    UploadNotReady,
)
from tusedge.events import HookEvent
from tusedge.ids import is_upload_id, new_upload_id
from tusedge.locking.base import Lock
from tusedge.protocol.concat import check_parts, final_length, part_ids
from tusedge.protocol.headers import ChecksumHeader, declared_digest
from tusedge.protocol.metadata import parse_metadata, safe_filename
from tusedge.protocol.requests import AppendChunk, CreateUpload
from tusedge.protocol.upload import (
    ConcatKind,
    Status,
    UploadInfo,
    check_body_fits,
    check_max_size,
    check_offset,
    resolve_length,
    room_left,
)
from tusedge.server import lifecycle
from tusedge.server.appendlock import lock_if_free
from tusedge.server.body import BodyPump, Ending
from tusedge.server.components import Components
from tusedge.server.finishing import Finisher
from tusedge.server.hooks import RequestFields, proposed_fields, upload_fields
from tusedge.state.errors import STATE_ERRORS, state_error
from tusedge.storage.base import as_content_server

log = logging.getLogger("tusedge")


@dataclass(frozen=True, slots=True)
class Download:
    """What a GET of a finished upload needs: its file, length and the name to offer it under."""

    upload: UploadInfo
    path: Path
    filename: str


class TusService:
    def __init__(self, components: Components) -> None:
        self.components = c = components
        # Shorthands for the components the operations use on every line.
        self.settings, self.store, self.repo, self.locker = c.settings, c.store, c.repository, c.locker
        self.finisher = Finisher(components)

    def clock(self) -> datetime:
        return self.components.clock()

    # --- lookups -------------------------------------------------------------------------------------
    async def get(self, upload_id: str) -> UploadInfo:
        """The upload, or UploadNotFound / UploadGone (terminated, expired, or past its expiry)."""
        info = await self.repo.get(upload_id) if is_upload_id(upload_id) else None
        if info is None:
            raise UploadNotFound()
        if info.status.gone or info.expired_at(self.clock()):
            raise UploadGone()
        return info

    def _expiry(self, now: datetime) -> datetime | None:
        return lifecycle.expiry(self.components, now)

    # --- creation ------------------------------------------------------------------------------------
    async def create(
        self,
        request: CreateUpload,
        body: AsyncIterator[bytes] | None,
        max_size: int | None = None,
        asking: RequestFields | None = None,
    ) -> UploadInfo:
        """``max_size``: a tighter limit than the server's for this one upload (a signed URL's). ``asking``:
        the request, as the pre-create hook (which may refuse the upload) and post-create see it."""
        hooks = self.components.hooks
        await hooks.pre_create(proposed_fields(request), asking)
        info = await self._create(request, body, max_size)
        kind = "single" if info.concat is None else info.concat.value
        self.components.metrics.uploads_created.labels(kind).inc()
        await hooks.notify(HookEvent.POST_CREATE, upload_fields(info, self.settings.base_path), asking)
        return info

    async def _create(
        self, request: CreateUpload, body: AsyncIterator[bytes] | None, max_size: int | None
    ) -> UploadInfo:
        limit = self.settings.max_size_bytes
        if max_size is not None:
            limit = min(limit, max_size) if limit else max_size
        capabilities = self.store.capabilities
        if request.concat is not None and not capabilities.concatenation:
            raise InvalidConcat("this server does not offer concatenation (see Tus-Extension)")
        if request.concat is not None and request.concat.final:
            return await self._create_final(request, limit)
        if request.length.deferred and not capabilities.defer_length:
            raise LengthRequired("this server does not offer creation-defer-length: send Upload-Length")
        if max_size is not None and request.length.deferred:
            raise LengthRequired("this signed URL limits the size: the upload needs an Upload-Length")
        length = request.length.length
        if length is not None:
            check_max_size(length, limit)
        digest = declared_digest(request.metadata)
        if digest is not None:
            new_hasher(digest.algorithm)  # 400 now for an algorithm we could not check later
        concat = ConcatKind.PARTIAL if request.concat is not None else None
        info = self._new_upload(request, length, Status.ACTIVE, concat)
        if request.has_body:
            check_body_fits(request.content_length, room_left(length, 0, limit))
        await self._persist(info, preallocate=length)
        if length == 0:
            # creation: an upload of length 0 is complete at once.
            info = await self._commit(info, 0, 0)
        elif body is not None and request.has_body:
            # creation-with-upload: the body is written exactly as a PATCH at offset 0 would be.
            lock = await self.locker.acquire(info.id, self.settings.lock_timeout_s)
            try:
                info = await self._write_body(info, lock, body, length, request.content_length, request.checksum)
            except (UploadInterrupted, RequestTimeout):
                # Another request has taken the upload over (it is theirs now), or the body came too slowly
                # and what arrived was kept as after a disconnect: the upload stays.
                raise
            except TusError:
                # All or nothing: a creation answered with an error (413, 460, 507 ...) leaves no upload
                # behind; its client never learnt the URL. (A body cut off is no error: that upload stays.)
                await self._discard(info.id)
                raise
            finally:
                await lock.release()
        return await self._after_write(info)

    def _new_upload(
        self,
        request: CreateUpload,
        length: int | None,
        status: Status,
        concat: ConcatKind | None,
        parts: Sequence[str] = (),
    ) -> UploadInfo:
        """The record of an upload about to be created (a new id, offset 0); one that is ACTIVE expires."""
        now = self.clock()
        return UploadInfo(
            id=new_upload_id(),
            offset=0,
            length=length,
            metadata=request.metadata,
            status=status,
            created_at=now,
            expires_at=self._expiry(now) if status is Status.ACTIVE else None,
            concat=concat,
            parts=tuple(parts),
        )

    async def _discard(self, upload_id: str) -> None:
        """Forget an upload that was never announced: its row, file and lock files, without a tombstone."""
        await self.repo.delete(upload_id)
        await self.store.remove(upload_id)
        await self.locker.forget(upload_id)

    async def _persist(self, info: UploadInfo, preallocate: int | None) -> None:
        """Create the upload's file, then its row; a row never exists without its file."""
        await self.store.create(info.id, preallocate)
        try:
            await self.repo.create(info)
        except BaseException:
            await self.store.remove(info.id)
            raise

    async def _create_final(self, request: CreateUpload, limit: int) -> UploadInfo:
        """concatenation: a final upload names its parts; its content is theirs, in order. With
        concatenation-unfinished the parts may still be uploading: the final completes when they do."""
        assert request.concat is not None
        ids = part_ids(request.concat.parts, self.settings.base_path, is_upload_id)
        parts = await self.repo.get_many(ids)
        check_parts(ids, parts)
        ordered = [parts[part_id] for part_id in ids]
        length = final_length(ordered)
        if length is not None:
            check_max_size(length, limit)
        ready = all(part.complete for part in ordered)
        info = self._new_upload(request, length, Status.FINISHING if ready else Status.ACTIVE, ConcatKind.FINAL, ids)
        # The final's file is not preallocated: copy_file_range into preallocated (unwritten) extents
        # measured 4-5x slower on ext4 than into a fresh file. A free-space check gives the early 507.
        if length is not None:
            await self.store.ensure_space(length)
        await self._persist(info, preallocate=None)
        if ready:
            await self.finisher.finish(info.id)
        else:
            # A part may have completed between our look-up and the insert; it did not see this final.
            await self.finisher.parts_changed(info.id)
        return await self.get(info.id)

    # --- core: PATCH ---------------------------------------------------------------------------------
    async def append(self, upload_id: str, request: AppendChunk, body: AsyncIterator[bytes]) -> UploadInfo:
        held = await lock_if_free(self.locker, upload_id, self.get)
        info: UploadInfo | None = None
        if held is None:
            # Taken: fail fast before asking for it, so a request that is bound to be refused never makes the
            # holder give way. Everything is checked again under the lock.
            self._check_append(self._appendable(await self.get(upload_id)), request)
            lock = await self.locker.acquire(upload_id, self.settings.lock_timeout_s)
        else:
            lock, info = held
        try:
            if info is None:
                info = await self.get(upload_id)
            length = self._check_append(self._appendable(info), request)
            if info.status is not Status.ACTIVE:
                return self._append_to_finished(info, request)
            # A length declared now (creation-defer-length) is committed with the body's bytes, never
            # before: a PATCH refused after this point leaves the upload's length as it was.
            info = await self._write_body(info, lock, body, length, request.content_length, request.checksum)
        finally:
            await lock.release()
        return await self._after_write(info)

    @staticmethod
    def _appendable(info: UploadInfo) -> UploadInfo:
        if info.is_final:
            # concatenation: "The Server MUST respond with the 403 Forbidden status to PATCH requests
            # against a final upload URL and MUST NOT modify the final or its partial uploads."
            raise ModifyFinalUpload()
        return info

    def _check_append(self, info: UploadInfo, request: AppendChunk) -> int | None:
        """The upload's length after this PATCH, or the reason it is refused (nothing is changed here)."""
        check_offset(info, request.offset)
        if info.status is not Status.ACTIVE:
            return info.length
        length = resolve_length(info, request.length)
        if length != info.length:
            check_max_size(length or 0, self.settings.max_size_bytes)
        check_body_fits(request.content_length, room_left(length, info.offset, self.settings.max_size_bytes))
        return length

    @staticmethod
    def _append_to_finished(info: UploadInfo, request: AppendChunk) -> UploadInfo:
        """A PATCH to an upload that has all its bytes: an empty one is answered with the offset (a client
        making sure it is done); anything more would go past Upload-Length."""
        if info.status is Status.FAILED:
            raise UploadFailed(info.error)
        resolve_length(info, request.length)
        if request.content_length != 0:
            raise ExceedsUploadLength("the upload already has all its bytes")
        return info

    async def _after_write(self, info: UploadInfo) -> UploadInfo:
        """Run the finishing steps of an upload that just received its last byte (outside its lock)."""
        if info.status is Status.FINISHING:
            await self.finisher.finish(info.id)
            info = await self.get(info.id)
        elif info.concat is ConcatKind.PARTIAL:
            # complete, or more of it committed: a final declared early joins what it can now
            await self.finisher.part_completed(info.id)
        return info

    async def _write_body(
        self,
        info: UploadInfo,
        lock: Lock,
        body: AsyncIterator[bytes],
        length: int | None,
        content_length: int | None,
        checksum: ChecksumHeader | None,
    ) -> UploadInfo:
        room = room_left(length, info.offset, self.settings.max_size_bytes)
        check_body_fits(content_length, room)
        hasher = new_hasher(checksum.algorithm) if checksum else None

        counted = info.offset  # bytes_received counts each committed byte once, checkpoints included

        async def checkpoint(offset: int) -> None:
            nonlocal counted
            now = self.clock()
            try:
                await self.repo.update(info.id, now, offset=offset, expires_at=self._expiry(now))
            except STATE_ERRORS as exc:  # the body pump ends FAILED with the reason (e.g. 507)
                raise state_error(exc) or UploadFailed("the offset could not be recorded") from exc
            self.components.metrics.checkpoints.inc()
            self.components.metrics.bytes_received.inc(offset - counted)
            counted = offset

        # Mid-body commits only when no digest must be checked first and the body cannot overrun.
        periodic = checksum is None and content_length is not None
        writer = await self.store.open_writer(info.id)
        try:
            pump = BodyPump(
                writer=writer,
                start=info.offset,
                room=room,
                buffer_bytes=self.settings.write_buffer_bytes,
                hasher=hasher,
                checkpoint=checkpoint if periodic else None,
                checkpoint_bytes=self.settings.commit_interval_bytes,
                checkpoint_s=self.settings.commit_interval_s,
                on_bytes=self.components.metrics.body_bytes_read.inc,
                lock=lock,
                stale_after_s=self.settings.stale_lock_s,
                length=length,
            )
            with self.components.metrics.writing():
                result = await pump.run(body)
        finally:
            await writer.close()

        end = result.end
        if checksum is not None:
            # checksum: a chunk is only kept when its digest can be checked and matches; bytes already
            # on disk past the committed offset are simply overwritten by the next PATCH.
            if result.ending is not Ending.COMPLETE:
                end = info.offset
            elif hasher is not None and hasher.digest() != checksum.digest:
                raise ChecksumMismatch(f"the body's {checksum.algorithm} digest does not match Upload-Checksum")
        failure = result.error
        if failure is None and result.ending is Ending.INTERRUPTED:
            failure = UploadInterrupted()
        trimmed = writer.trimmed and end == length
        if failure is None:
            return await self._commit(info, end, length, trimmed, counted)
        # All or nothing: a request answered with an error keeps only the bytes it made durable (the
        # offset moves over them), never the length it declared; with none, the upload is untouched.
        if end > info.offset:
            await self._commit(info, end, info.length, trimmed and length == info.length, counted)
        raise failure

    async def _commit(
        self, info: UploadInfo, end: int, length: int | None, trimmed: bool = False, counted: int | None = None
    ) -> UploadInfo:
        """Commit offset ``end`` (and ``length``). ``trimmed``: the file was already cut at ``end`` (by the
        body's last write); ``counted``: the offset up to which bytes_received has already counted this
        request's bytes (its checkpoints), the upload's offset when None."""
        now = self.clock()
        done = length is not None and end == length
        status, expires_at = Status.ACTIVE, self._expiry(now)
        if done:
            if not trimmed:
                await self.store.truncate(info.id, end)
            expires_at = None
            declared = declared_digest(info.metadata)
            status = Status.FINISHING if declared is not None else Status.COMPLETE
        await self.repo.update(info.id, now, offset=end, length=length, status=status, expires_at=expires_at)
        self.components.metrics.bytes_received.inc(max(0, end - (info.offset if counted is None else counted)))
        committed = replace(info, offset=end, length=length, status=status, expires_at=expires_at)
        if status is Status.COMPLETE:
            await lifecycle.completed(self.components, committed)
        return committed

    # --- termination ---------------------------------------------------------------------------------
    async def terminate(self, upload_id: str) -> None:
        """termination: the upload and its data are removed; later requests get 410 Gone."""
        await self.get(upload_id)
        lock = await self.locker.acquire(upload_id, self.settings.lock_timeout_s)
        try:
            info = await self.get(upload_id)
            await lifecycle.retire(self.components, upload_id, Status.TERMINATED)
        finally:
            await lock.release()
        if info.concat is ConcatKind.PARTIAL:
            await self.finisher.part_gone(upload_id)
        await self.components.hooks.notify(HookEvent.POST_TERMINATE, upload_fields(info, self.settings.base_path))

    # --- downloads -----------------------------------------------------------------------------------
    async def download(self, upload_id: str) -> Download:
        """ours.get: the content of an upload that is complete and may be served, and its name (from the
        ``filename`` or ``name`` metadata, made safe; else the id)."""
        info = await self.get(upload_id)
        if info.status is Status.FAILED:
            raise UploadFailed(info.error)
        if info.status is Status.FINISHING:
            raise UploadNotReady("the upload is being finished (merged or verified); retry shortly")
        if not info.complete:
            raise UploadNotReady("the upload is not finished; HEAD shows its progress")
        metadata = parse_metadata(info.metadata)
        filename = safe_filename(metadata.get("filename") or metadata.get("name"), fallback=info.id)
        return Download(info, as_content_server(self.store).path(info.id), filename)
