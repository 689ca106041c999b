"""tusedge.protocol.upload and .concat: the pure decisions made on an upload record."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from upload_records import upload_info

from tusedge.errors import ExceedsUploadLength, InvalidConcat, LengthAlreadySet, MaxSizeExceeded, OffsetMismatch
from tusedge.ids import is_upload_id, new_upload_id
from tusedge.protocol.concat import check_parts, final_length, part_ids
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

NOW = datetime(2025, 1, 1, tzinfo=UTC)
A, B = "a" * 32, "b" * 32


def _info(**changes: object) -> UploadInfo:
    return upload_info(A, NOW, **changes)


# --- offsets and lengths ------------------------------------------------------------------------------


def test_matching_offset_passes() -> None:
    check_offset(_info(offset=40), 40)


@pytest.mark.parametrize("offset", [0, 39, 41, 100])
def test_offset_mismatch_is_409(offset: int) -> None:
    """core.patch-offset-409: "If the offsets do not match, the Server MUST respond with the 409 Conflict
    status without modifying the upload resource"."""
    with pytest.raises(OffsetMismatch) as info:
        check_offset(_info(offset=40), offset)
    assert info.value.status == 409


@pytest.mark.parametrize(("length", "max_size"), [(100, 100), (0, 1), (10**15, 0)])
def test_length_within_max_size_passes(length: int, max_size: int) -> None:
    check_max_size(length, max_size)


def test_length_above_max_size_is_413() -> None:
    """creation.max-size-413: "If the length of the upload exceeds the maximum ... 413"."""
    with pytest.raises(MaxSizeExceeded) as info:
        check_max_size(101, 100)
    assert info.value.status == 413


def test_resolve_length_keeps_known_length() -> None:
    assert resolve_length(_info(length=100), None) == 100
    assert resolve_length(_info(length=100), 100) == 100


def test_resolve_length_sets_a_deferred_length_once() -> None:
    """defer.set-once: a later PATCH sets Upload-Length."""
    assert resolve_length(_info(length=None, offset=10), 10) == 10
    assert resolve_length(_info(length=None, offset=10), 50) == 50
    assert resolve_length(_info(length=None), None) is None


@pytest.mark.parametrize("declared", [0, 99, 101])
def test_changing_a_known_length_is_400(declared: int) -> None:
    """defer.set-once: once set it cannot change (400 on a different value)."""
    with pytest.raises(LengthAlreadySet) as info:
        resolve_length(_info(length=100), declared)
    assert info.value.status == 400


def test_declared_length_below_offset_is_refused() -> None:
    with pytest.raises(ExceedsUploadLength):
        resolve_length(_info(length=None, offset=10), 9)


@pytest.mark.parametrize(
    ("length", "offset", "max_size", "room"),
    [(100, 40, 0, 60), (100, 100, 0, 0), (100, 40, 50, 60), (None, 40, 100, 60), (None, 40, 0, None)],
)
def test_room_left(length: int | None, offset: int, max_size: int, room: int | None) -> None:
    assert room_left(length, offset, max_size) == room


@pytest.mark.parametrize(("content_length", "room"), [(60, 60), (0, 0), (None, 10), (10**12, None)])
def test_body_that_fits_passes(content_length: int | None, room: int | None) -> None:
    check_body_fits(content_length, room)


@pytest.mark.parametrize(("content_length", "room"), [(61, 60), (1, 0)])
def test_body_declared_beyond_length_is_413(content_length: int, room: int) -> None:
    """core.patch-beyond-length: bytes beyond Upload-Length are never stored; the request is rejected
    (ours: 413)."""
    with pytest.raises(ExceedsUploadLength) as info:
        check_body_fits(content_length, room)
    assert info.value.status == 413


# --- the record ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("status", list(Status))
def test_only_terminated_and_expired_are_gone(status: Status) -> None:
    assert status.gone is (status in (Status.TERMINATED, Status.EXPIRED))


def test_deferred_is_unknown_length_but_not_a_final() -> None:
    assert _info(length=None).deferred
    assert not _info(length=5).deferred
    assert not _info(length=None, concat=ConcatKind.FINAL).deferred
    assert _info(concat=ConcatKind.FINAL).is_final
    assert not _info(concat=ConcatKind.PARTIAL).is_final


def test_complete_only_in_complete_status() -> None:
    assert _info(status=Status.COMPLETE).complete
    assert not _info(status=Status.FINISHING, offset=100).complete


@pytest.mark.parametrize(
    ("status", "expires_at", "expired"),
    [
        (Status.ACTIVE, NOW - timedelta(seconds=1), True),
        (Status.ACTIVE, NOW, True),
        (Status.ACTIVE, NOW + timedelta(seconds=1), False),
        (Status.ACTIVE, None, False),
        (Status.COMPLETE, NOW - timedelta(days=1), False),
        (Status.TERMINATED, NOW - timedelta(days=1), False),
    ],
)
def test_only_active_uploads_past_expiry_are_expired(
    status: Status, expires_at: datetime | None, expired: bool
) -> None:
    """exp.gone: after expiry the upload answers 404 or 410; finished uploads do not expire."""
    assert _info(status=status, expires_at=expires_at).expired_at(NOW) is expired


def test_upload_info_is_frozen() -> None:
    info = _info()
    with pytest.raises(AttributeError):
        info.offset = 5  # type: ignore[misc]


# --- ids ----------------------------------------------------------------------------------------------


def test_new_upload_ids_are_128_bit_hex_and_distinct() -> None:
    ids = {new_upload_id() for _ in range(1000)}
    assert len(ids) == 1000
    assert all(is_upload_id(upload_id) for upload_id in ids)


@pytest.mark.parametrize("value", ["", "a" * 31, "a" * 33, "A" * 32, "g" * 32, "a" * 31 + "\n", "../" + "a" * 29])
def test_not_upload_ids(value: str) -> None:
    assert not is_upload_id(value)


# --- concatenation ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "urls",
    [
        [f"/files/{A}", f"/files/{B}"],
        [f"http://edge.example:1080/files/{A}", f"https://other/files/{B}?x=1"],
        [f"/files/{A}", f"/files/{A}"],  # the same part twice is a valid order
    ],
)
def test_part_ids_from_absolute_and_relative_urls(urls: list[str]) -> None:
    """concat.final: "space-separated, absolute or relative URLs"; the final's content is the parts in order."""
    assert part_ids(urls, "/files/", is_upload_id) == [url.split("/files/")[1][:32] for url in urls]


@pytest.mark.parametrize(
    "url",
    [f"/other/{A}", f"/files/{A}/x", "/files/", f"/files/{A.upper()}", f"files/{A}", f"/files/../files/{A}x", ""],
)
def test_part_urls_outside_our_endpoint_are_invalid_concat(url: str) -> None:
    """concat.bad-parts: a final naming unknown uploads is rejected with 4xx."""
    with pytest.raises(InvalidConcat):
        part_ids([f"/files/{B}", url], "/files/", is_upload_id)


def test_check_parts_accepts_existing_partials() -> None:
    check_parts([A, B], {A: _info(concat=ConcatKind.PARTIAL), B: _info(id=B, concat=ConcatKind.PARTIAL)})


@pytest.mark.parametrize(
    ("parts", "status"),
    [
        ({}, 404),
        ({A: _info(concat=ConcatKind.PARTIAL, status=Status.TERMINATED)}, 404),
        ({A: _info(concat=ConcatKind.PARTIAL, status=Status.EXPIRED)}, 404),
        ({A: _info(concat=None)}, 400),
        ({A: _info(concat=ConcatKind.FINAL)}, 400),
    ],
)
def test_check_parts_refuses_missing_or_non_partial(parts: dict[str, UploadInfo], status: int) -> None:
    """concat.bad-parts: unknown uploads (ours: 404) or non-partial uploads (ours: 400) are rejected."""
    with pytest.raises(InvalidConcat) as info:
        check_parts([A], parts)
    assert info.value.status == status


def test_final_length_is_sum_of_parts_once_all_known() -> None:
    """concat.final-head: Upload-Length = sum of partials; only when it can be computed."""
    assert final_length([_info(length=3), _info(length=0), _info(length=7)]) == 10
    assert final_length([_info(length=3), _info(length=None)]) is None
    assert final_length([]) == 0
