"""tusedge.oserrors: each errno a file operation can fail with becomes the typed error its client gets,
never an OSError that would end as an untyped 500."""

from __future__ import annotations

import errno
import os

import pytest

from tusedge.errors import (
    FileTooLarge,
    InsufficientStorage,
    StorageFailed,
    StorageUnavailable,
    TusError,
    UploadNotFound,
)
from tusedge.oserrors import storage_error


@pytest.mark.parametrize(
    ("number", "expected", "status"),
    [
        (errno.ENOSPC, InsufficientStorage, 507),
        (errno.EDQUOT, InsufficientStorage, 507),
        (errno.EFBIG, FileTooLarge, 413),
        (errno.EROFS, StorageUnavailable, 503),
        (errno.EMFILE, StorageUnavailable, 503),
        (errno.ENFILE, StorageUnavailable, 503),
        (errno.EIO, StorageFailed, 500),
        (errno.EACCES, StorageFailed, 500),
        (errno.ENAMETOOLONG, StorageFailed, 500),
    ],
    ids=lambda v: errno.errorcode.get(v, str(v)) if isinstance(v, int) else getattr(v, "__name__", str(v)),
)
def test_each_errno_becomes_a_typed_error_with_a_reason(number: int, expected: type[TusError], status: int) -> None:
    error = storage_error(OSError(number, os.strerror(number)), "abc")
    assert type(error) is expected
    assert error.status == status
    assert error.message and "\n" not in error.message


def test_a_missing_file_is_404() -> None:
    error = storage_error(FileNotFoundError(errno.ENOENT, "gone"), "abc")
    assert isinstance(error, UploadNotFound) and "abc" in error.message


def test_storage_that_may_come_back_says_when_to_retry() -> None:
    error = storage_error(OSError(errno.EROFS, "read-only"), "abc")
    assert "read-only" in error.message and error.headers["Retry-After"]


def test_an_io_error_names_the_system_reason() -> None:
    error = storage_error(OSError(errno.EIO, os.strerror(errno.EIO)), "abc")
    assert os.strerror(errno.EIO) in error.message
