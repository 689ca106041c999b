"""The upload resource as the protocol sees it: a frozen record, and the pure decisions made on it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from tusedge.errors import ExceedsUploadLength, LengthAlreadySet, MaxSizeExceeded, OffsetMismatch


class Status(StrEnum):
    ACTIVE = "active"  # accepting bytes
    COMPLETE = "complete"  # offset == length, content final
    FINISHING = "finishing"  # all bytes are in; merging parts and/or verifying the whole-file digest
    FAILED = "failed"  # merging or verification failed; never served
    TERMINATED = "terminated"  # tombstone after DELETE
    EXPIRED = "expired"  # tombstone after expiry

    @property
    def gone(self) -> bool:
        return self in (Status.TERMINATED, Status.EXPIRED)


class Failure(StrEnum):
    """Why an upload FAILED, as a value (``UploadInfo.error`` says it in words, for people)."""

    DIGEST_MISMATCH = "digest-mismatch"  # the file's digest differs from the one its metadata declared
    PART_GONE = "part-gone"  # a partial upload of this final upload is gone


class ConcatKind(StrEnum):
    PARTIAL = "partial"
    FINAL = "final"


@dataclass(frozen=True, slots=True)
class UploadInfo:
    id: str
    offset: int
    length: int | None  # None while deferred (creation-defer-length) or unknown (final of unfinished parts)
    metadata: str | None  # the Upload-Metadata header as the client sent it (validated)
    status: Status
    created_at: datetime
    expires_at: datetime | None = None
    concat: ConcatKind | None = None
    parts: tuple[str, ...] = ()  # ids of the partial uploads of a final upload, in order
    error: str | None = None  # why the upload FAILED, in words
    failure: Failure | None = None  # why the upload FAILED, as a value

    @property
    def deferred(self) -> bool:
        return self.length is None and self.concat is not ConcatKind.FINAL

    @property
    def complete(self) -> bool:
        return self.status is Status.COMPLETE

    @property
    def is_final(self) -> bool:
        return self.concat is ConcatKind.FINAL

    def expired_at(self, now: datetime) -> bool:
        return self.status is Status.ACTIVE and self.expires_at is not None and self.expires_at <= now


def check_offset(info: UploadInfo, offset: int) -> None:
    """core: "If the offsets do not match, the Server MUST respond with the 409 Conflict status without
    modifying the upload resource." """
    if offset != info.offset:
        raise OffsetMismatch(f"Upload-Offset is {offset}, but the upload is at {info.offset}")


def check_max_size(length: int, max_size: int) -> None:
    """creation: "If the length of the upload exceeds the maximum, which MAY be specified using the
    Tus-Max-Size header, the Server MUST respond with the 413 Request Entity Too Large status." """
    if max_size and length > max_size:
        raise MaxSizeExceeded(f"Upload-Length {length} exceeds the maximum of {max_size} bytes")


def resolve_length(info: UploadInfo, declared: int | None) -> int | None:
    """creation-defer-length: once the length is known it cannot change; a PATCH may set it once."""
    if declared is None:
        return info.length
    if info.length is not None and declared != info.length:
        raise LengthAlreadySet(f"Upload-Length is already {info.length}")
    if declared < info.offset:
        raise ExceedsUploadLength(f"Upload-Length {declared} is below the current offset {info.offset}")
    return declared


def room_left(length: int | None, offset: int, max_size: int) -> int | None:
    """How many more bytes the upload may take; None means no limit is known."""
    if length is not None:
        return length - offset
    if max_size:
        return max_size - offset
    return None


def check_body_fits(content_length: int | None, room: int | None) -> None:
    """Bytes beyond Upload-Length are never stored: a body declared too long is refused before it is read."""
    if content_length is not None and room is not None and content_length > room:
        raise ExceedsUploadLength(f"the body of {content_length} bytes exceeds the {room} bytes left")
